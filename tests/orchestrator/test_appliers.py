"""One desired state, one applier at a time, one broker and one supervisor per pod, whatever the
race: concurrent commands, a second pod file with the same name, slow applies, stale pid files,
a broker that cannot start or is killed."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import Pods
from ..helpers import (
    PODCTL,
    agent_state,
    interruptible,
    pod_folder,
    podctl,
    status_of,
    tmux_out,
    transcript,
    wait_until,
    write_pod,
)

TWO = """\
name: {name}
agents:
  writer: {{cli: script, role: writes}}
  helper: {{cli: script, role: helps, script: {{replies: "helped: {{text}}"}}}}
routes:
  - {{name: review, to: [helper]}}
"""


def windows(pod: str) -> set[str]:
    return set(tmux_out("list-windows", "-t", f"={pod}", "-F", "#{window_name}").split())


def daemons(pod_file: Path) -> dict[str, list[int]]:
    """The broker and supervisor processes running for this pod file, from /proc."""
    found: dict[str, list[int]] = {"broker": [], "supervisor": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text()
        except OSError:
            continue
        if state[state.rfind(")") + 2] == "Z":
            continue
        text = [a.decode(errors="replace") for a in argv]
        if str(pod_file) not in text:
            continue
        if "podctl.orchestrator.broker_main" in text or ("broker" in text and "run" in text):
            found["broker"].append(int(entry.name))
        elif "podctl.orchestrator.supervisor" in text or "supervise" in text:
            found["supervisor"].append(int(entry.name))
    return found


def test_up_of_another_file_with_a_running_pods_name_is_refused_unless_replace(tmp_path: Path, pods: Pods) -> None:
    first = write_pod(tmp_path / "a", "name: dup\nagents:\n  one: {cli: script}\n")
    second = write_pod(tmp_path / "b", "name: dup\nagents:\n  one: {cli: script}\n  two: {cli: script, script: {replies: 'two: {text}'}}\n")
    pods.up(first)
    planned = podctl("plan", str(second)).stdout
    assert f"`podctl up {second}` will be refused: pod dup is running from {first}" in planned, planned
    refused = podctl("up", str(second), "--no-attach", check=False)
    assert refused.returncode == 1
    assert str(first) in refused.stderr and str(second) in refused.stderr and "--replace" in refused.stderr
    assert windows("dup") == {"podctl", "one"}, "the running pod is untouched"
    assert status_of("dup")["pod_file"] == str(first)

    out = podctl("up", str(second), "--no-attach", "--replace").stdout
    assert f"now follows {second}" in out
    assert status_of("dup")["pod_file"] == str(second)
    answer = podctl("send", "dup", "--to", "two", "--ask", "new here?", "--wait", "30").stdout
    assert "reply from two: two: new here?" in answer, "the broker knows the new file's agents"

    first.write_text(first.read_text() + "  stray: {cli: script}\n")
    second.write_text(second.read_text() + "  three: {cli: script}\n")
    wait_until(lambda: "three" in windows("dup"), timeout=30, message="the replaced file's save to be applied")
    assert "stray" not in windows("dup"), "saving the old file changes nothing any more"
    assert [r["pod_file"] for r in json.loads(podctl("ls", "--json").stdout)] == [str(second)]


def test_add_and_remove_are_applied_once_by_the_supervisor(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "once", TWO.format(name="once"))
    pods.up(pod_file)
    wait_until(lambda: agent_state("once", "writer") == "idle", timeout=30, message="writer idle")
    added = podctl("add", "once", "script", "--name", "extra")
    assert added.stdout.count("add agent extra") == 1, added.stdout
    wait_until(lambda: agent_state("once", "extra") == "idle", timeout=30, message="extra idle")
    removed = podctl("remove", "once", "extra")
    assert removed.stdout.count("remove agent extra") == 1, removed.stdout
    assert "extra" not in windows("once")
    log = transcript("once")
    assert log.count("add agent extra") == 1 and log.count("remove agent extra") == 1, log
    assert "restart agent extra" not in log and "nothing to change" not in log, log

    text = pod_file.read_text()
    refused = podctl("remove", "once", "helper", check=False)
    assert refused.returncode == 1 and "would be invalid" in refused.stderr and "review" in refused.stderr
    assert pod_file.read_text() == text, "an edit that would break the file is not written"


STAND_IN_CODEX = """\
#!/bin/sh
# A stand-in for the codex CLI whose hook pre-trust (`codex app-server`) hangs until released.
if [ "$1" = "app-server" ]; then
  touch "$STANDIN_DIR/app-server-started"
  while [ ! -e "$STANDIN_DIR/release" ]; do sleep 0.05; done
  exit 0
fi
if [ "$1" = "--version" ]; then echo "codex-cli 0.169.0"; exit 0; fi
exec cat
"""


def stand_in_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put STAND_IN_CODEX first on PATH; its folder is where it marks and waits (`app-server-started`, `release`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "codex").write_text(STAND_IN_CODEX)
    (bin_dir / "codex").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_DIR", str(bin_dir))
    return bin_dir


def test_the_supervisor_stays_responsive_while_an_apply_is_slow(
    tmp_path: Path, pods: Pods, podctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = stand_in_codex(tmp_path, monkeypatch)
    pod_file = write_pod(tmp_path / "slow", "name: slow\nagents:\n  solo: {cli: script, role: v1}\n")
    pods.up(pod_file)
    wait_until(lambda: agent_state("slow", "solo") == "idle", timeout=30, message="solo idle")
    try:
        pod_file.write_text(pod_file.read_text() + "  coder: {cli: codex}\n")
        wait_until(lambda: (bin_dir / "app-server-started").exists(), timeout=30, message="the slow apply to start")
        for role in ("v2", "v3"):
            pod_file.write_text(pod_file.read_text().replace("role: v1", f"role: {role}").replace("role: v2", f"role: {role}"))
        (bin_dir / "release").touch()
        told = r"Your role is now:( \[[^\]]*\])?\n    {}"  # the delivery marks end the message's first line
        wait_until(lambda: re.search(told.format("v3"), transcript("slow")), timeout=30,
                   message="the last save to be applied after the slow one")
        assert "coder" in windows("slow")
        assert not re.search(told.format("v2"), transcript("slow")), "the last save wins"

        (bin_dir / "release").unlink()
        (bin_dir / "app-server-started").unlink()
        pod_file.write_text(pod_file.read_text() + "  coder2: {cli: codex}\n")
        wait_until(lambda: (bin_dir / "app-server-started").exists(), timeout=30, message="a second slow apply")
        pid = int((podctl_home / "slow" / "supervisor.pid").read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
                   timeout=5, message="the supervisor to stop at once, mid-apply")
    finally:
        (bin_dir / "release").touch()


def test_concurrent_ups_serialize_and_leave_one_broker_and_one_supervisor(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "race", TWO.format(name="race"))
    pods.names.add("race")
    ups = [subprocess.Popen([*PODCTL, "up", str(pod_file), "--no-attach"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in ups]
    assert [p.returncode for p in ups] == [0, 0], results
    assert sum("add agent writer" in out for out, _ in results) == 1, "applied once"
    assert any("nothing to do" in out for out, _ in results)
    running = wait_until(lambda: (d := daemons(pod_file)) and len(d["supervisor"]) == 1 and d, timeout=10)
    assert len(running["broker"]) == 1, running
    assert windows("race") == {"podctl", "writer", "helper"}

    down = subprocess.Popen([*PODCTL, "down", "race"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    up = subprocess.Popen([*PODCTL, "up", str(pod_file), "--no-attach"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    (_, down_err), (_, up_err) = down.communicate(timeout=120), up.communicate(timeout=120)
    assert down.returncode == 0 and up.returncode == 0, (down_err, up_err)
    running = daemons(pod_file)
    if tmux_out("has-session", "-t", "=race") == "" and not running["broker"]:
        assert not running["supervisor"], "down ran last: nothing is left"
    else:
        assert len(running["broker"]) == 1 and len(running["supervisor"]) == 1, "up ran last: one of each"
        assert status_of("race")["broker"] == "running"
    podctl("down", "race")
    assert daemons(pod_file) == {"broker": [], "supervisor": []}, "no orphan survives down"


def test_a_stale_pid_file_never_signals_an_unrelated_process(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    pod_folder("stale", write_pod(tmp_path / "stale", "name: stale\nagents:\n  solo: {cli: script}\n"))
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (podctl_home / "stale" / "broker.pid").write_text(f"{bystander.pid} 12345\n")
        (podctl_home / "stale" / "supervisor.pid").write_text(f"{bystander.pid}\n")
        podctl("down", "stale")
        podctl("status", "stale")
        assert bystander.poll() is None, "a reused pid was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_broker_that_cannot_start_fails_up_at_once_naming_the_store(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    pod_file = write_pod(tmp_path / "bad", "name: bad\nagents:\n  solo: {cli: script}\n")
    pods.names.add("bad")
    db = pod_folder("bad", pod_file) / "pod.db"
    db.write_bytes(b"this is not a database\n" * 400)
    out = podctl("up", str(pod_file), "--no-attach", check=False, timeout=30)
    assert out.returncode == 1 and "pod.db" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert daemons(pod_file)["broker"] == [], "no broker is left behind"


def test_readiness_survives_a_broker_restart(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    pod_file = write_pod(tmp_path / "phoenix", TWO.format(name="phoenix"))
    pods.up(pod_file)

    def ready() -> bool:
        return all(a.get("tools_ready") for a in status_of("phoenix")["agents"])

    wait_until(ready, timeout=30, message="every shim to announce itself")
    pid = int((podctl_home / "phoenix" / "broker.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: status_of("phoenix")["broker"] == "running"
               and int((podctl_home / "phoenix" / "broker.pid").read_text().split()[0]) != pid,
               timeout=30, message="the supervisor to restart the broker")
    wait_until(ready, timeout=30, message="the shims to announce themselves to the new broker")
    out = podctl("send", "phoenix", "--to", "helper", "--ask", "still awake?", "--wait", "30").stdout
    assert "reply from helper: helped: still awake?" in out, out


def test_state_folders_are_private_whatever_the_umask(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, pods: Pods
) -> None:
    fresh = tmp_path_factory.mktemp("um") / "a"
    home = fresh / "b" / "home"
    monkeypatch.setenv("PODCTL_HOME", str(home))
    pod_file = write_pod(tmp_path / "priv", "name: priv\nagents:\n  solo: {cli: script}\n")
    pods.names.add("priv")
    done = subprocess.run([*PODCTL, "up", str(pod_file), "--no-attach"], capture_output=True, text=True, timeout=60,
                   preexec_fn=lambda: os.umask(0))
    assert done.returncode == 0, done.stderr
    for folder in (fresh, home.parent, home, home / "priv", home / "priv" / "agents", home / "priv" / "logs",
                   home / "priv" / "agents" / "solo"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((home / "priv" / "broker.sock").stat().st_mode) == 0o600


def test_the_supervisor_backs_off_from_a_broker_that_cannot_start(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    pod_file = write_pod(tmp_path / "flaky", "name: flaky\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    state = podctl_home / "flaky"
    db = state / "pod.db"
    os.kill(int((state / "broker.pid").read_text().split()[0]), signal.SIGKILL)
    for extra in (db.with_name("pod.db-wal"), db.with_name("pod.db-shm")):
        extra.unlink(missing_ok=True)
    db.write_bytes(b"this is not a database\n" * 400)
    log = state / "logs" / "supervisor.log"

    def failed_twice() -> bool:
        assert len(daemons(pod_file)["broker"]) <= 1, "never two brokers for one pod"
        return log.read_text().count("could not start") >= 2

    wait_until(failed_twice, timeout=30, message="the supervisor to try, fail and try again")
    text = log.read_text()
    assert "pod.db" in text and "retrying in" in text, text
    db.unlink()
    wait_until(lambda: status_of("flaky")["broker"] == "running", timeout=60,
               message="the supervisor to start the broker once the store is usable again")


def test_a_sighup_as_soon_as_the_supervisor_is_recorded_never_kills_it(tmp_path: Path, pods: Pods) -> None:
    """`podctl add/remove` send SIGHUP to the recorded supervisor at once, and `up` records it the moment
    it is spawned, while it still imports: the default action of SIGHUP ended it without a word, and the
    edit waited for nobody ("the supervisor ... stopped before applying the change")."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator import processes

    pod_file = write_pod(tmp_path / "hup", "name: hup\nagents:\n  one: {cli: script}\n")
    pods.up(pod_file)
    paths = PodPaths.of("hup")
    processes.stop(processes.supervisor_pid(paths))
    processes.start_supervisor(pod_file, paths)
    pid = processes.supervisor_pid(paths)
    assert pid is not None
    for _ in range(400):  # from its first instant until well after it set up its own handler
        os.kill(pid, signal.SIGHUP)
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.005)  # pacing the signals, not waiting for anything
    assert processes.supervisor_pid(paths) == pid, "the supervisor died of a SIGHUP"
    write_pod(tmp_path / "hup", "name: hup\nagents:\n  one: {cli: script}\n  two: {cli: script}\n")
    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "two" in windows("hup"), timeout=30, message="the supervisor to apply the save it was told of")


def test_ctrl_c_during_up_says_what_was_left_and_ls_shows_it(
    tmp_path: Path, pods: Pods, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during `up` left a half-up pod (broker running, no supervisor) without a word, and `ls` said `up`."""
    bin_dir = stand_in_codex(tmp_path, monkeypatch)
    pod_file = write_pod(tmp_path / "half", "name: half\nagents:\n  solo: {cli: script}\n  coder: {cli: codex}\n")
    pods.names.add("half")
    up = subprocess.Popen([*PODCTL, "up", str(pod_file), "--no-attach"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        wait_until(lambda: (bin_dir / "app-server-started").exists(), timeout=60, message="up to be mid-way")
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)
    finally:
        (bin_dir / "release").touch()
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 130, err
    assert "podctl up was interrupted" in err and "Traceback" not in err, err
    assert "pod half is left partial: broker and tmux session" in err, err
    assert f"`podctl up {pod_file}` finishes it, `podctl down half` stops it" in err, err
    rows = {r["pod"]: r for r in json.loads(podctl("ls", "--json").stdout)}
    assert rows["half"]["state"] == "partial: broker and tmux session", rows
    assert "partial: broker and tmux session" in podctl("ls").stdout

    podctl("up", str(pod_file), "--no-attach")
    assert json.loads(podctl("ls", "--json").stdout)[0]["state"] == "up"


def test_a_supervisor_that_starts_while_the_pod_file_is_unreadable_supervises_the_pod_as_applied(
    tmp_path: Path, pods: Pods
) -> None:
    """The supervisor loaded the pod file as it started: one replaced by a FIFO (or saved invalid) between
    `up` applying it and the supervisor's start killed it, and with it hot reload."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator import processes

    pod_file = write_pod(tmp_path / "late", "name: late\nagents:\n  one: {cli: script}\n")
    pods.up(pod_file)
    paths = PodPaths.of("late")
    processes.stop(processes.supervisor_pid(paths))
    text = pod_file.read_text()
    pod_file.unlink()
    os.mkfifo(pod_file)
    processes.start_supervisor(pod_file, paths)
    wait_until(lambda: "not a regular file" in transcript("late"), timeout=30, message="the supervisor to say why")
    assert processes.supervisor_pid(paths) is not None, "the supervisor runs on"
    pod_file.unlink()
    pod_file.write_text(text + "  two: {cli: script}\n")
    wait_until(lambda: "two" in windows("late"), timeout=30, message="the next good save to be applied")
