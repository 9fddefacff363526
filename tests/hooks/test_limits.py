"""The hook's limits: one total deadline whatever stalls (stdin, the broker), any input exits 0,
a bounded injection however much is queued, and frames that are valid JSON only."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from podctl.broker import codec, wire

from ..helpers import BrokerProcess, hook_argv


def hook_command(state: Path, agent: str, cli: str = "claude", event: str = "PostToolUse") -> list[str]:
    return hook_argv(state, agent, cli, event)


def hook_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **overrides}


def fake_state(root: Path, agent: str = "bob") -> Path:
    """A state folder laid out like a pod's, with no broker behind it."""
    (root / "agents" / agent).mkdir(parents=True)
    (root / "agents" / agent / "token").write_text("t\n")
    (root / "logs").mkdir()
    return root


def test_stdin_never_closed_exits_0_at_the_deadline(podctl_home: Path) -> None:
    state = fake_state(podctl_home / "open")
    proc = subprocess.Popen(
        hook_command(state, "bob"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=hook_env(PODCTL_HOOK_DEADLINE_MS="500"),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(b'{"hook_event_name": "PostToolUse"')
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == b"" and proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert "gave up after the 500 ms deadline" in (state / "logs" / "hooks.log").read_text()


def test_deeply_nested_json_on_stdin_exits_0_and_still_reports(broker: BrokerProcess) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    proc = subprocess.run(hook_command(broker.state, "bob"), input=deep, capture_output=True, text=True, timeout=30,
                          env=hook_env(PODCTL_HOOK_TIMEOUT_MS="10000"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    with broker.client("alice") as alice:
        states = {a["name"]: a["state"] for a in alice.call("list_agents")["agents"]}
    assert states["bob"] == "busy", "an unreadable event still reports the tool call"


def test_a_broker_that_trickles_bytes_cannot_hold_the_hook(podctl_home: Path) -> None:
    """Each byte arrives well within the per-call timeout; only the total deadline ends the wait."""
    state = fake_state(podctl_home / "trickle")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(state / "broker.sock"))
    server.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            while not stop.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                stop.wait(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            hook_command(state, "bob"), input="{}", capture_output=True, text=True, timeout=10,
            env=hook_env(PODCTL_HOOK_TIMEOUT_MS="1000", PODCTL_HOOK_DEADLINE_MS="1500"),
        )
    finally:
        stop.set()
        server.close()
        thread.join(timeout=10)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert "gave up after the 1500 ms deadline" in (state / "logs" / "hooks.log").read_text()


def test_a_huge_backlog_injects_a_bounded_batch_and_points_to_read_messages(broker: BrokerProcess) -> None:
    text = "y" * 60_000
    with broker.client("alice", timeout=30) as alice:
        for n in range(300):
            alice.call("tell", to="bob", text=f"{n:03d}{text}")
    proc = subprocess.run(
        hook_command(broker.state, "bob"), input="{}", capture_output=True, text=True, timeout=30,
        env=hook_env(PODCTL_HOOK_TIMEOUT_MS="10000", PODCTL_HOOK_DEADLINE_MS="20000"),
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert 0 < len(proc.stdout) <= 40_000
    injected = json.loads(proc.stdout)["hookSpecificOutput"]["additionalContext"]
    assert injected.count("is too large to show here") == 3, "three are pointed to, once"
    assert "297 more podctl messages are waiting" in injected and "read_messages()" in injected
    seen = []
    with broker.client("bob", timeout=30) as bob:
        while page := bob.call("read_messages")["messages"]:
            seen += [m["text"][:3] for m in page]
    assert seen == [f"{n:03d}" for n in range(300)], "every message is still there for read_messages"


def test_a_backlog_is_injected_in_batches_oldest_first(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        for n in range(30):
            alice.call("tell", to="bob", text=f"m{n:02d} " + "z" * 10_000)
    proc = subprocess.run(hook_command(broker.state, "bob"), input="{}", capture_output=True, text=True,
                          timeout=30, env=hook_env(PODCTL_HOOK_TIMEOUT_MS="10000"))
    injected = json.loads(proc.stdout)["hookSpecificOutput"]["additionalContext"]
    assert [f"m{n:02d}" in injected for n in range(5)] == [True, True, True, False, False]
    assert "27 more podctl messages are waiting" in injected
    with broker.client("bob") as bob:
        rest = bob.call("read_messages")["messages"]
    assert [m["text"][:3] for m in rest] == [f"m{n:02d}" for n in range(3, 30)], "the batch was acknowledged"


def test_frames_are_strict_json() -> None:
    for text in ("NaN", "[1, Infinity]", '{"a": -Infinity}'):
        with pytest.raises(ValueError, match="not valid JSON"):
            codec.loads(text)
    with pytest.raises(ValueError):
        codec.dumps({"a": math.nan})
    with pytest.raises(ValueError):
        wire.decode(b'{"v": 1, "id": NaN}')
    dumps, loads = codec._standard()
    with pytest.raises(ValueError, match="not valid JSON"):
        loads("[NaN]")
    with pytest.raises(ValueError):
        dumps([math.inf])
    assert codec.loads('{"a": [1.5, -2e3, null]}') == {"a": [1.5, -2e3, None]}
