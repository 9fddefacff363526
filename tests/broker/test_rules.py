"""Auto-ask rules in the broker, with real git repositories: turn_end review, loop guard, hand-off."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..helpers import BrokerProcess, podctl, wait_until, write_pod

REVIEW_POD = """\
name: autorev
workdir: repo
agents:
  writer: {{cli: script, role: writes the code}}
  rev-a: {{cli: script}}
  rev-b: {{cli: script}}
routes:
  - name: review
    to: [rev-a, rev-b]
    mode: all
    timeout: 10m
rules:
  - name: auto-review
    on: turn_end
    agent: writer
    when: {{changed: ["src/**"]}}
    ask: review
    text: "{{agent}} changed {{changed_files}}. Review:\\n{{diff}}"
    max_rounds: {max_rounds}
    cooldown: 0s
"""


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for args in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "README.md").write_text("hello\n")
    subprocess.run(["git", "add", "."], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True)
    return path


def asks_to(client) -> list[dict]:
    """The asks among the client's unread messages (each is returned once)."""
    return [m for m in client.call("read_messages")["messages"] if m["kind"] == "ask"]


def start(tmp_path: Path, home: Path, max_rounds: int = 3) -> tuple[BrokerProcess, Path]:
    folder = tmp_path / "autorev"
    repo = git_repo(folder / "repo")
    pod = write_pod(folder, REVIEW_POD.format(max_rounds=max_rounds))
    return BrokerProcess(pod_file=pod, pod="autorev", home=home).start(), repo


def test_turn_end_with_changes_asks_both_reviewers_and_gathers_one_answer(tmp_path: Path, podctl_home: Path) -> None:
    broker, repo = start(tmp_path, podctl_home)
    try:
        with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
            w.call("hello", shim=True)
            w.call("hook", event="session_start")
            w.call("hook", event="turn_start")
            (repo / "notes.txt").write_text("not under src\n")
            w.call("hook", event="turn_end")
            (repo / "src").mkdir()
            (repo / "src" / "app.py").write_text("print('hi')\n")
            w.call("hook", event="turn_start")
            w.call("hook", event="turn_end")
            [ask_a] = wait_until(lambda: asks_to(a), timeout=20, message="rev-a to be asked")
            [ask_b] = wait_until(lambda: asks_to(b), timeout=20, message="rev-b to be asked")
            assert ask_a["id"] == ask_b["id"] and ask_a["from"] == "podctl"
            assert "writer changed src/app.py" in ask_a["text"] and "+print('hi')" in ask_a["text"]
            assert "notes.txt" not in ask_a["text"], "only files matching the rule's globs are reviewed"
            a.call("post_reply", ask_id=ask_a["ask_id"], text="A: looks fine")
            assert [m for m in w.call("read_messages", since=0)["messages"] if m["from"] == "podctl"] == []
            b.call("post_reply", ask_id=ask_b["ask_id"], text="B: add a test")

            def gathered():
                return [m for m in w.call("read_messages", since=0)["messages"] if m["from"] == "podctl"]

            [answer] = wait_until(gathered, timeout=20, message="the gathered answer")
            assert answer["urgent"] and "[rev-a]\nA: looks fine" in answer["text"] and "[rev-b]\nB: add a test" in answer["text"]
            with broker.client("user") as user:

                def writer_woken():
                    [writer] = [ag for ag in user.call("status")["agents"] if ag["name"] == "writer"]
                    return writer["last_wake"]

                wait_until(writer_woken, timeout=20, message="the idle writer to be woken for the answer")
                logs = [m["text"] for m in user.call("history")["messages"] if m["kind"] == "log"]
            assert any("rule auto-review fired for writer" in t for t in logs)
    finally:
        broker.stop()


def test_loop_guard_stops_at_max_rounds_until_the_user_gives_a_new_task(tmp_path: Path, podctl_home: Path) -> None:
    broker, repo = start(tmp_path, podctl_home, max_rounds=2)
    (repo / "src").mkdir()
    try:
        with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
            w.call("hook", event="session_start")
            for round_no in range(3):
                (repo / "src" / f"f{round_no}.py").write_text(f"x = {round_no}\n")
                w.call("hook", event="turn_start")
                w.call("hook", event="turn_end")
                if round_no < 2:
                    [ask] = wait_until(lambda: asks_to(a), timeout=20, message=f"ask of round {round_no}")
                    assert f"src/f{round_no}.py" in ask["text"] and f"f{round_no - 1}.py" not in ask["text"]
                    a.call("post_reply", ask_id=ask["ask_id"], text="ok")
                    b.call("read_messages")
                    b.call("post_reply", ask_id=ask["ask_id"], text="ok")
                    wait_until(lambda: w.call("read_messages")["messages"], timeout=20, message="gathered answer")
            with broker.client("user") as user:
                wait_until(
                    lambda: any("reached max_rounds" in m["text"] for m in user.call("history")["messages"]),
                    timeout=20, message="the max_rounds notice",
                )
                assert asks_to(a) == [], "no third round"
                assert "round 2/2" in podctl("rules", "list", "autorev").stdout
                user.call("tell", to="writer", text="new task: add logging")
            (repo / "src" / "f3.py").write_text("y = 3\n")
            w.call("hook", event="turn_start")
            w.call("hook", event="turn_end")
            [ask] = wait_until(lambda: asks_to(a), timeout=20, message="a new round after a new task")
            assert "src/f2.py" in ask["text"] and "src/f3.py" in ask["text"]
    finally:
        broker.stop()


def test_handoff_gives_role_digest_and_task(tmp_path: Path, podctl_home: Path) -> None:
    pod = write_pod(
        tmp_path / "relay",
        "name: relay\nagents:\n  primary: {cli: script, role: implements the parser}\n  backup: {cli: script}\n",
    )
    broker = BrokerProcess(pod_file=pod, pod="relay", home=podctl_home).start()
    try:
        podctl("send", "relay", "--to", "primary", "implement the CSV parser")
        with broker.client("primary") as p:
            p.call("tell", to="backup", text="I am halfway: tokenizer done")
        out = podctl("handoff", "relay", "primary", "backup", "--reason", "rate limit").stdout
        assert "primary handed off to backup" in out
        with broker.client("backup") as b:
            handoff = [m for m in b.call("read_messages")["messages"] if m["from"] == "podctl"][-1]
        assert handoff["urgent"] and "implements the parser" in handoff["text"]
        assert "implement the CSV parser" in handoff["text"] and "tokenizer done" in handoff["text"]
        with broker.client("user") as user:
            [primary] = [a for a in user.call("status")["agents"] if a["name"] == "primary"]
        assert primary["handed_off_to"] == "backup"
    finally:
        broker.stop()


def test_pattern_in_a_pane_hands_off(tmp_path: Path, podctl_home: Path, tmux_socket: str) -> None:
    pod = write_pod(
        tmp_path / "patt",
        "name: patt\nagents:\n  primary: {cli: script, role: main}\n  backup: {cli: script}\n"
        "rules:\n  - name: on-limit\n    on: pattern\n    agent: primary\n"
        "    when: {regex: 'rate limit (reached|exceeded)'}\n    handoff: backup\n",
    )
    broker = BrokerProcess(pod_file=pod, pod="patt", home=podctl_home).start()
    try:
        subprocess.run(
            ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "patt", "-n", "primary", "cat"], check=True
        )
        subprocess.run(
            ["tmux", "-L", tmux_socket, "send-keys", "-t", "=patt:=primary", "-l", "API error: rate limit reached"],
            check=True,
        )
        with broker.client("backup") as b:
            [handoff] = wait_until(
                lambda: [m for m in b.call("read_messages", since=0)["messages"] if "HAND-OFF" in m["text"]],
                timeout=20, message="a hand-off to backup",
            )
        assert "rule on-limit" in handoff["text"]
    finally:
        broker.stop()
