"""How commands end: Ctrl-C and a closed pipe end them quietly, as Unix tools end (130; 141, the
status a shell reports for a tool its pipe ended), bad arguments are refused before anything is
sent, and `send --wait` that gets no reply says so and exits 3. Through the fast path
(cli/fast.py) and through typer alike."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess

import pytest

from ..helpers import PODCTL, BrokerProcess, interruptible, podctl, scaled, wait_until

QUIET_PIPE_EXIT = 141


def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The next line `proc` prints, failing after `timeout` (scaled) instead of blocking."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], scaled(timeout))
    assert ready, "no output in time"
    return proc.stdout.readline()


@pytest.mark.parametrize("follow", [["-f"], ["-f", "-n0"]], ids=["fast path", "typer"])
def test_ctrl_c_on_tail_follow_exits_130_without_a_traceback(broker: BrokerProcess, follow: list[str]) -> None:
    podctl("send", "bus", "--to", "bob", "a first line to show")
    proc = subprocess.Popen([*PODCTL, "tail", "bus", *follow], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=interruptible)
    try:
        assert "a first line to show" in read_line(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=scaled(20))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "Aborted" not in err, err


@pytest.mark.parametrize("args", [
    ["ls"], ["ls", "--json"], ["status", "bus"], ["status", "bus", "--json"], ["tail", "bus"], ["tail", "bus", "-n0"],
    ["usage", "bus"],
], ids=" ".join)
def test_output_into_a_closed_pipe_ends_the_command_quietly(broker: BrokerProcess, args: list[str]) -> None:
    podctl("send", "bus", "--to", "bob", "something for tail to print")
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `podctl ... | head -1` once head has exited
    try:
        proc = subprocess.run([*PODCTL, *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=scaled(60))
    finally:
        os.close(write_end)
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == QUIET_PIPE_EXIT


def last_message_id(broker: BrokerProcess) -> int:
    with broker.client("user") as user:
        return int(user.call("status")["last_message_id"] or 0)


@pytest.mark.parametrize("wait", [["--wait", "-3"], ["--wait=-3"], ["--wait", "nan"], ["--wait", "inf"]],
                         ids=" ".join)
def test_a_bad_wait_is_refused_before_the_ask_is_sent(broker: BrokerProcess, wait: list[str]) -> None:
    before = last_message_id(broker)
    proc = podctl("send", "bus", "--to", "bob", "--ask", *wait, "did you?", check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "--wait" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "nothing was sent" in proc.stderr, proc.stderr
    assert last_message_id(broker) == before, "nothing was sent"


def test_send_wait_without_a_reply_says_so_and_exits_3(broker: BrokerProcess) -> None:
    proc = podctl("send", "bus", "--to", "bob", "--ask", "--wait", "0.3", "anyone?", check=False)
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert "no reply within 0.3s" in proc.stdout and "still open, waiting on bob" in proc.stdout, proc.stdout
    as_json = podctl("send", "bus", "--to", "bob", "--ask", "--wait", "0.2", "--json", "anyone?", check=False)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["reply"]["status"] == "timeout"
    with broker.client("bob") as bob:
        asked = next(m for m in bob.call("read_messages")["messages"] if m["kind"] == "ask")
        bob.call("post_reply", ask_id=asked["id"], text="late, but here")
    replied = podctl("send", "bus", "--to", "bob", "--ask", "--wait", "0.2", "again?", check=False)
    assert replied.returncode == 3, "the first ask's reply does not answer the next one"


def test_a_wait_longer_than_one_broker_call_is_waited_in_several(broker: BrokerProcess) -> None:
    proc = subprocess.Popen([*PODCTL, "send", "bus", "--to", "bob", "--ask", "--wait", "1e300", "take your time"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with broker.client("bob") as bob:
            asked = wait_until(lambda: [m for m in bob.call("read_messages")["messages"] if m["kind"] == "ask"],
                               message="the ask to reach bob")
            bob.call("post_reply", ask_id=asked[0]["id"], text="done")
        out, err = proc.communicate(timeout=scaled(30))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "reply from bob: done" in out
