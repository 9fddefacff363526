"""`podctl up` and friends on a real (private) tmux server with script agents."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..conftest import Pods
from ..helpers import (
    PODCTL,
    agent_state,
    holding_apply_lock,
    pane_text,
    podctl,
    status_of,
    tmux_out,
    transcript,
    wait_until,
    window_pids,
    write_pod,
)

REPO = Path(__file__).resolve().parents[2]

POD = """\
# a pod for the tests
name: {name}
agents:
  writer:          # writes
    cli: script
    role: writes code
    script:
      replies: "writer: {{text}}"
      steps:
        - write: {{path: out/app.py, text: "x = 1\\n"}}
        - ask: {{to: reviewer, text: "review out/app.py"}}
  reviewer:
    cli: script
    role: reviews code
    script:
      replies: "LGTM from {{agent}}: {{text}}"
"""


def windows(pod: str) -> list[str]:
    return tmux_out("list-windows", "-t", f"={pod}", "-F", "#{window_name}:#{window_panes}").split()


def test_up_brings_exactly_the_expected_windows_and_a_second_up_is_a_noop(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "p1", POD.format(name="p1"))
    first = pods.up(pod_file)
    assert "start broker" in first and "add agent writer" in first and "add agent reviewer" in first
    assert windows("p1") == ["podctl:1", "writer:1", "reviewer:1"]
    wait_until(lambda: "LGTM from reviewer: review out/app.py" in pane_text("p1", "writer"), timeout=30,
               message="the writer to get the reviewer's answer")
    wait_until(lambda: "reviewer replied: LGTM from reviewer" in pane_text("p1", "podctl"), timeout=30,
               message="the live view to show the reply, under its ask")
    assert (tmp_path / "p1" / "out" / "app.py").read_text() == "x = 1\n"
    pids = window_pids("p1")
    second = pods.up(pod_file)
    assert "nothing to do" in second
    assert window_pids("p1") == pids, "a second up disturbs nothing"
    assert "nothing to do" in podctl("plan", str(pod_file)).stdout


def test_down_then_up_keeps_history_and_restart_keeps_identity(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    pod_file = write_pod(tmp_path / "p2", POD.format(name="p2"))
    pods.up(pod_file)
    wait_until(lambda: "LGTM from reviewer" in transcript("p2"), timeout=30, message="the first exchange")
    token = (podctl_home / "p2" / "agents" / "reviewer" / "token").read_text()
    down = podctl("down", "p2").stdout
    assert "history kept" in down and tmux_out("has-session", "-t", "=p2") == ""
    assert status_of("p2")["broker"] == "stopped"
    pods.up(pod_file)
    history = podctl("tail", "p2").stdout
    assert history.count("review out/app.py") >= 2, "old history is still there after down and up"
    pid = window_pids("p2")["reviewer"]
    assert "restarted reviewer" in podctl("restart", "p2", "reviewer").stdout
    wait_until(lambda: window_pids("p2")["reviewer"] != pid, timeout=10, message="a new reviewer process")
    assert (podctl_home / "p2" / "agents" / "reviewer" / "token").read_text() == token
    out = podctl("send", "p2", "--to", "reviewer", "--ask", "still you?", "--wait", "30").stdout
    assert "reply from reviewer: LGTM from reviewer: still you?" in out


def test_hot_reload_adds_changes_removes_and_rejects_bad_edits(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "p3", POD.format(name="p3"))
    pods.up(pod_file)
    wait_until(lambda: agent_state("p3", "reviewer") == "idle", timeout=30, message="reviewer idle")
    pids = window_pids("p3")

    pod_file.write_text(pod_file.read_text() + "  tester:\n    cli: script\n    role: tests\n")
    wait_until(lambda: "tester:1" in windows("p3"), timeout=20, message="the added agent's window")
    assert {k: v for k, v in window_pids("p3").items() if k != "tester"} == pids, "nothing else disturbed"

    pod_file.write_text(pod_file.read_text().replace("role: reviews code", "role: reviews code and docs"))
    wait_until(lambda: "reviews code and docs" in transcript("p3"), timeout=20,
               message="the reviewer to be told its new role")
    assert window_pids("p3")["reviewer"] == pids["reviewer"], "a role change never restarts"

    pod_file.write_text(pod_file.read_text().replace("  tester:\n    cli: script\n", "  tester:\n    cli: script\n    args: [--x]\n"))
    before = window_pids("p3")
    wait_until(lambda: window_pids("p3").get("tester") not in (None, before["tester"]), timeout=20,
               message="the changed agent to restart")
    assert window_pids("p3")["reviewer"] == before["reviewer"]

    good = pod_file.read_text()
    bad = good.replace("cli: script\n    args: [--x]", "cli: scrpt\n    args: [--x]")
    assert bad != good
    pod_file.write_text(bad)
    wait_until(lambda: "invalid; nothing applied" in transcript("p3"), timeout=20,
               message="the invalid edit to be reported")
    assert "pod.yaml:" in podctl("tail", "p3").stdout
    assert "tester:1" in windows("p3"), "an invalid file changes nothing"

    removed = good.replace("  tester:\n    cli: script\n    args: [--x]\n    role: tests\n", "")
    assert removed != good
    pod_file.write_text(removed)
    wait_until(lambda: "tester:1" not in windows("p3"), timeout=20, message="the removed agent's window to go")
    assert window_pids("p3")["reviewer"] == before["reviewer"]


def test_add_and_remove_edit_the_file_keeping_comments(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "p4", POD.format(name="p4"))
    pods.up(pod_file)
    podctl("add", "p4", "script", "--name", "helper", "--role", "helps out")
    text = pod_file.read_text()
    assert "# a pod for the tests" in text and "# writes" in text and "helps out" in text
    wait_until(lambda: "helper:1" in windows("p4"), timeout=20, message="the added agent")
    podctl("remove", "p4", "helper")
    assert "helper" not in pod_file.read_text() and "# writes" in pod_file.read_text()
    wait_until(lambda: "helper:1" not in windows("p4"), timeout=20, message="the removed agent")
    bad = podctl("remove", "p4", "nobody", check=False)
    assert bad.returncode == 1 and "no agent 'nobody'" in bad.stderr


def test_exited_agent_is_stopped_and_restart_policy_brings_it_back(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(
        tmp_path / "p5",
        "name: p5\nagents:\n  keeper: {cli: script, restart: always}\n  quitter: {cli: script}\n",
    )
    pods.up(pod_file)
    wait_until(lambda: agent_state("p5", "quitter") == "idle", timeout=30, message="quitter idle")
    wait_until(lambda: agent_state("p5", "keeper") == "idle", timeout=30, message="keeper idle")
    keeper_pid = window_pids("p5")["keeper"]
    tmux_out("send-keys", "-t", "=p5:=quitter", "C-d")
    wait_until(lambda: agent_state("p5", "quitter") == "stopped", timeout=20, message="quitter to show stopped")
    tmux_out("send-keys", "-t", "=p5:=keeper", "C-d")
    wait_until(lambda: window_pids("p5")["keeper"] != keeper_pid, timeout=20, message="keeper restarted")
    wait_until(lambda: agent_state("p5", "keeper") == "idle", timeout=30, message="keeper back")
    # "stopped" shows as soon as the agent's MCP session closes; the supervisor notices the dead
    # pane on its next tick, so its transcript line can come a moment later.
    wait_until(lambda: "agent quitter exited" in podctl("tail", "p5").stdout, timeout=20, message="exit reported")
    assert agent_state("p5", "quitter") == "stopped", "restart: never leaves it stopped"


def test_dead_broker_is_reported_and_repaired(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    import os
    import signal

    pod_file = write_pod(tmp_path / "p6", "name: p6\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    pid_file = wait_until(lambda: (p := podctl_home / "p6" / "supervisor.pid").exists() and p, timeout=20,
                          message="the supervisor to start")
    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    wait_until(lambda: status_of("p6")["supervisor"] == "stopped", timeout=20, message="the supervisor to stop")
    os.kill(int((podctl_home / "p6" / "broker.pid").read_text().split()[0]), signal.SIGKILL)
    status = podctl("status", "p6").stdout
    assert "broker stopped" in status and "brings it back" in status
    assert "start broker" in pods.up(pod_file)
    assert status_of("p6")["broker"] == "running" and status_of("p6")["supervisor"] == "running"
    os.kill(int((podctl_home / "p6" / "broker.pid").read_text().split()[0]), signal.SIGKILL)
    wait_until(lambda: "the broker was not running: restarted it" in transcript("p6"), timeout=30,
               message="the supervisor to restart a killed broker")


def test_a_busy_broker_is_left_alone_not_restarted(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    """A broker too busy to answer the supervisor's 1 s probe was logged as "not running" and
    "restarted" (8 times in one attack): only a broker whose process is gone is started again."""
    import os
    import signal

    pod_file = write_pod(tmp_path / "p7", "name: p7\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    folder = podctl_home / "p7"
    wait_until(lambda: (folder / "supervisor.pid").exists(), timeout=20, message="the supervisor to start")
    broker_pid = int((folder / "broker.pid").read_text().split()[0])
    supervisor_log = folder / "logs" / "supervisor.log"
    os.kill(broker_pid, signal.SIGSTOP)  # alive, holding its lock, answering nothing
    try:
        said = wait_until(
            lambda: next((line for line in supervisor_log.read_text().splitlines()
                          if "did not answer" in line or "holds its lock" in line or "could not start" in line), None),
            timeout=60, message="the supervisor to notice the broker does not answer",
        )
        assert f"the broker (pid {broker_pid}) runs but did not answer" in said, said
    finally:
        os.kill(broker_pid, signal.SIGCONT)
    wait_until(lambda: "answers again" in supervisor_log.read_text(), timeout=20, message="the supervisor to see it back")
    assert int((folder / "broker.pid").read_text().split()[0]) == broker_pid, "the same broker runs on"
    assert "the broker was not running" not in transcript("p7")
    broker_log = (folder / "logs" / "broker.log").read_text()
    assert broker_log.count("listening on") == 1 and "already running" not in broker_log, broker_log


def test_ls_and_delete(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    import json

    pod_file = write_pod(tmp_path / "p9", "name: p9\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    rows = json.loads(podctl("ls", "--json").stdout)
    assert {"pod": "p9", "state": "up", "needs_you": 0, "pod_file": str(pod_file)} in rows
    refused = podctl("delete", "p9", input="n\n", check=False)
    assert refused.returncode == 0 and "nothing done" in refused.stdout and (podctl_home / "p9").exists()
    assert "deleted pod p9" in podctl("delete", "p9", "--yes").stdout
    assert not (podctl_home / "p9").exists() and tmux_out("has-session", "-t", "=p9") == ""
    assert json.loads(podctl("ls", "--json").stdout) == [r for r in rows if r["pod"] != "p9"]


def test_up_fails_early_without_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pod_file = write_pod(tmp_path / "p7", "name: p7\nagents:\n  a: {cli: codex}\n")
    monkeypatch.setenv("PATH", str(Path(shutil.which("tmux") or "/usr/bin/tmux").parent))
    out = podctl("up", str(pod_file), "--no-attach", check=False)
    assert out.returncode == 1 and "`codex` (codex) is not on PATH" in out.stderr


def test_demo_example_comes_up(tmp_path: Path, pods: Pods) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(REPO / "examples" / "demo", demo)
    pods.up(demo / "pod.yaml")
    wait_until(lambda: "tester → writer reply to #" in transcript("demo"), timeout=30,
               message="the demo's exchange in the transcript")


def test_plan_cli_prints_the_steps_and_changes_nothing(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "p8", POD.format(name="p8"))
    fresh = podctl("plan", str(pod_file)).stdout
    assert "start broker" in fresh and "add agent writer" in fresh
    assert tmux_out("has-session", "-t", "=p8") == ""
    assert "no pod named 'p8'" in podctl("status", "p8", check=False).stderr, "plan creates nothing"
    pods.up(pod_file)
    wait_until(lambda: agent_state("p8", "reviewer") == "idle", timeout=40, message="reviewer idle")
    draft_text = pod_file.read_text().replace("role: reviews code", "role: reviews tests") + "  extra: {cli: script}\n"
    draft = write_pod(tmp_path / "draft", f"workdir: {pod_file.parent}\n" + draft_text)
    out = podctl("plan", str(draft)).stdout
    assert "pod p8: 2 changes" in out and "update role reviewer" in out and "add agent extra" in out
    assert "extra" not in tmux_out("list-windows", "-t", "=p8", "-F", "#{window_name}"), "plan changes nothing"


def test_a_reload_that_removes_a_busy_agent_lets_its_turn_finish_first(tmp_path: Path, pods: Pods) -> None:
    """The broker used to forget a removed agent at once (stopped, no identity), so the supervisor's
    next tick removed its window mid-turn although the plan said it waits until the agent is idle."""
    folder = tmp_path / "p9"
    text = ("name: p9\nagents:\n  worker:\n    cli: script\n    script:\n      steps:\n        - wait_for: go.flag\n"
            "        - say: finished my turn\n  keeper: {cli: script}\n")
    pod_file = write_pod(folder, text)
    pods.up(pod_file)
    wait_until(lambda: agent_state("p9", "worker") == "busy", timeout=30, message="the worker busy")
    pod_file.write_text(text.replace("  worker:\n    cli: script\n    script:\n      steps:\n        - wait_for: go.flag\n"
                                     "        - say: finished my turn\n", ""))
    wait_until(lambda: "waits until worker is idle" in transcript("p9"), timeout=20, message="the removal to wait")
    assert f"`podctl up {pod_file} --force` does it now" in transcript("p9"), "the command that does it now"
    worker = next(a for a in status_of("p9")["agents"] if a["name"] == "worker")
    assert worker["state"] == "busy" and worker.get("leaving") is True
    table = podctl("status", "p9").stdout
    assert "leaving (busy for" in table and "removed from the pod file: it goes when its turn ends" in table, table
    assert "worker:1" in windows("p9"), "still at work"
    (folder / "go.flag").write_text("")
    wait_until(lambda: "worker:1" not in windows("p9"), timeout=30, message="the worker removed once idle")
    assert "worker" not in {a["name"] for a in status_of("p9")["agents"]}


def test_any_edit_of_a_pod_that_is_down_comes_up_and_keeps_the_removed_agents_history(tmp_path: Path, pods: Pods) -> None:
    """`up` of a1, a2, `down`, the file edited to b1, `up`: the broker died with KeyError 'a1' (it
    marked a1 removed in the store but had never loaded it), and putting the old file back failed too."""
    pod_file = write_pod(tmp_path / "ed", "name: ed\nagents:\n  a1: {cli: script, script: {replies: 'a1 says {text}'}}\n"
                                            "  a2: {cli: script}\n")
    pods.up(pod_file)
    assert "a1 says hello a1" in podctl("send", "ed", "--to", "a1", "--ask", "hello a1", "--wait", "30").stdout
    podctl("down", "ed")

    pod_file.write_text("name: ed\nagents:\n  b1: {cli: script, script: {replies: 'b1 says {text}'}}\n")
    planned = podctl("plan", str(pod_file)).stdout
    assert "remove agent a1: no longer in the pod file (its history is kept)" in planned, planned
    assert "remove agent a2: no longer in the pod file" in planned and "add agent b1" in planned
    assert "add agent b1" in pods.up(pod_file)
    assert "b1 says hi b1" in podctl("send", "ed", "--to", "b1", "--ask", "hi b1", "--wait", "30").stdout
    assert {a["name"] for a in status_of("ed")["agents"]} == {"b1"}
    history = podctl("tail", "ed").stdout
    assert "hello a1" in history and "a1 says hello a1" in history, "the removed agents' history stays readable"
    podctl("down", "ed")

    pod_file.write_text("name: ed\nagents:\n  a1: {cli: script, script: {replies: 'a1 again {text}'}}\n"
                        "  a3: {cli: script, role: renamed a2}\n")
    out = pods.up(pod_file)
    assert "add agent a1" in out and "add agent a3" in out
    assert "a1 again back?" in podctl("send", "ed", "--to", "a1", "--ask", "back?", "--wait", "30").stdout
    assert {a["name"] for a in status_of("ed")["agents"]} == {"a1", "a3"}


def test_a_failed_up_records_nothing(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    """A failed `up` recorded its pod file first, so the pod then followed a file it never ran."""
    import json

    first = write_pod(tmp_path / "one", "name: rec\nagents:\n  solo: {cli: script}\n")
    pods.up(first)
    podctl("down", "rec")
    state = podctl_home / "rec"
    applied = (state / "applied.json").read_text()
    second = write_pod(tmp_path / "two", "name: rec\nagents:\n  other: {cli: script}\n")
    db = state / "pod.db"
    kept = db.read_bytes()
    db.write_bytes(b"this is not a database\n" * 400)
    failed = podctl("up", str(second), "--no-attach", check=False)
    assert failed.returncode == 1 and "pod.db" in failed.stderr, failed.stderr
    assert (state / "pod.yaml.path").read_text().strip() == str(first), "the last good pod file is still the pod's"
    assert (state / "applied.json").read_text() == applied
    assert [r["pod_file"] for r in json.loads(podctl("ls", "--json").stdout)] == [str(first)]
    db.write_bytes(kept)
    assert "add agent solo" in pods.up(first)


def test_a_fifo_in_place_of_the_pod_file_is_refused_and_later_saves_are_applied(tmp_path: Path, pods: Pods) -> None:
    """A pod file replaced by a FIFO blocked the supervisor's reload thread forever (it opened it
    to read, waiting for a writer): later valid saves were never applied."""
    import os

    pod_file = write_pod(tmp_path / "ff", "name: ff\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    text = pod_file.read_text()
    pod_file.unlink()
    os.mkfifo(pod_file)
    wait_until(lambda: "not a regular file" in transcript("ff"), timeout=20, message="the FIFO to be refused")
    status = status_of("ff")
    assert "not a regular file" in status["pod_file_problem"], status
    assert "the pod no longer follows its pod file" in podctl("status", "ff").stdout
    assert "not a regular file" in podctl("validate", str(pod_file), check=False).stdout
    pod_file.unlink()
    pod_file.write_text(text + "  second: {cli: script}\n")
    wait_until(lambda: "second:1" in windows("ff"), timeout=20, message="the next valid save to be applied")
    assert status_of("ff")["pod_file_problem"] is None


def test_status_says_when_the_pod_file_is_invalid_or_gone_and_resume_says_where_it_was(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "gone", "name: gone\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    assert status_of("gone")["pod_file_problem"] is None
    text = pod_file.read_text()
    pod_file.write_text(text.replace("cli: script", "cli: scrpt"))
    wait_until(lambda: "invalid; nothing applied" in transcript("gone"), timeout=20, message="the invalid save")
    problem = status_of("gone")["pod_file_problem"]
    assert "invalid; nothing applied" in problem and "pod.yaml:3:" in problem, problem
    table = podctl("status", "gone").stdout
    assert "the pod no longer follows its pod file: pod.yaml changed but is invalid" in table, table
    assert "pod.yaml:3:" in table

    pod_file.unlink()
    wait_until(lambda: f"{pod_file} is gone" in transcript("gone"), timeout=20, message="the deletion to be said")
    assert f"{pod_file} is gone" in status_of("gone")["pod_file_problem"]
    podctl("down", "gone")
    out = podctl("resume", "gone", "--no-attach", check=False)
    assert out.returncode == 1 and f"it was brought up from {pod_file}" in out.stderr, out.stderr
    assert "podctl init" not in out.stderr


def test_a_change_to_a_script_file_restarts_its_agent(tmp_path: Path, pods: Pods) -> None:
    """docs/pod-file.md says a change to a `script:` file restarts the agent; it did nothing until the
    pod file itself was saved (the supervisor watched the pod file only)."""
    folder = tmp_path / "sf"
    (folder / "scripts").mkdir(parents=True)
    script = folder / "scripts" / "rev.yaml"
    script.write_text("replies: 'v1 {text}'\n")
    pod_file = write_pod(folder, "name: sf\nagents:\n  rev: {cli: script, script: scripts/rev.yaml}\n"
                                 "  other: {cli: script}\n")
    pods.up(pod_file)
    assert "v1 one" in podctl("send", "sf", "--to", "rev", "--ask", "one", "--wait", "30").stdout
    pids = window_pids("sf")
    script.write_text("replies: 'v2 {text}'\n")
    wait_until(lambda: window_pids("sf").get("rev") not in (None, pids["rev"]), timeout=20,
               message="the agent to restart with its new script")
    assert window_pids("sf")["other"] == pids["other"]
    wait_until(lambda: agent_state("sf", "rev") == "idle", timeout=30, message="rev back")
    assert "v2 two" in podctl("send", "sf", "--to", "rev", "--ask", "two", "--wait", "30").stdout


def test_a_change_to_a_pod_file_it_extends_is_applied(tmp_path: Path, pods: Pods) -> None:
    folder = tmp_path / "ext"
    base = write_pod(folder, "agents:\n  solo: {cli: script}\n", name="base.yaml")
    pod_file = write_pod(folder, "name: ext\nextends: ./base.yaml\n")
    pods.up(pod_file)
    base.write_text(base.read_text() + "  more: {cli: script}\n")
    wait_until(lambda: "more:1" in windows("ext"), timeout=20, message="the base file's new agent")


def test_restart_of_a_pod_that_is_down_says_so_and_fails(tmp_path: Path, pods: Pods) -> None:
    """It printed `restarted` and did nothing."""
    pod_file = write_pod(tmp_path / "rd", "name: rd\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    podctl("down", "rd")
    out = podctl("restart", "rd", "solo", check=False)
    assert out.returncode == 1 and "restarted" not in out.stdout, out.stdout
    assert f"pod rd is down: nothing restarted; `podctl up {pod_file}` brings it up" in out.stderr, out.stderr


def test_restart_says_for_whom_it_waits(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    """`restart` waited for the pod's lock without a word (up and down say for whom they wait)."""
    import subprocess

    pod_file = write_pod(tmp_path / "rw", "name: rw\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    with holding_apply_lock("rw", "a test holding the lock"):
        restart = subprocess.Popen([*PODCTL, "restart", "rw", "solo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        assert restart.stderr is not None
        line = restart.stderr.readline()
        assert "waiting for a test holding the lock" in line and "to finish with this pod" in line, line
    out, _ = restart.communicate(timeout=60)
    assert restart.returncode == 0 and "restarted solo" in out
