"""Delivery is honest: what a tool call returned is read and never shown to the model again."""

from __future__ import annotations

import json
import subprocess

import pytest
from podctl.broker.wire import Client

from ..helpers import PODCTL, BrokerProcess, podctl, wait_until


def _reply_state(client: Client, ask_id: int, reader: str) -> str:
    history = client.call("history", since=0)["messages"]
    reply = next(m for m in history if m["kind"] == "reply" and m["ask_id"] == ask_id)
    return str(next(d["state"] for d in reply["delivery"] if d["to"] == reader))


@pytest.mark.parametrize("op", ["wait_for_reply", "check_replies"])
def test_a_reply_returned_by_a_tool_is_read_and_never_injected(broker: BrokerProcess, op: str) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob, broker.client("user") as user:
        ask_id = alice.call("ask", to="bob", text="review it")["ask_id"]
        bob.call("post_reply", ask_id=ask_id, text="LGTM")
        args = {"timeout_ms": 5000} if op == "wait_for_reply" else {}
        returned = alice.call_untyped(op, ask_id=ask_id, **args)
        assert [r["text"] for r in returned["replies"]] == ["LGTM"]
        assert _reply_state(user, ask_id, "alice") == "read"
        hook = alice.call("hook", event="tool_done")
        assert hook["messages"] == [] and hook["claim"] is None, "the PostToolUse hook injects it again"
        assert alice.call("read_messages")["messages"] == []


def test_a_reply_printed_by_send_wait_is_read_by_the_user(broker: BrokerProcess) -> None:
    waiting = subprocess.Popen(
        [*PODCTL, "send", "bus", "--to", "bob", "--ask", "ship it?", "--wait", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        with broker.client("bob") as bob:
            [ask] = wait_until(lambda: bob.call("read_messages")["messages"], timeout=20, message="bob to get the ask")
            bob.call("post_reply", ask_id=ask["id"], text="yes")
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert "reply from bob: yes" in out, err
    with broker.client("user") as user:
        assert _reply_state(user, ask["id"], "user") == "read"
    status = json.loads(podctl("status", "bus", "--json").stdout)
    assert "user" not in status["pending_deliveries"], status["pending_deliveries"]


def test_wait_without_ask_is_a_usage_error(broker: BrokerProcess) -> None:
    out = podctl("send", "bus", "--to", "bob", "hello", "--wait", "5", check=False)
    assert out.returncode == 2 and "--wait waits for the reply to an ask: add --ask" in out.stderr
    with broker.client("bob") as bob:
        assert bob.call("read_messages")["messages"] == [], "nothing was sent"
