"""The shim through the real MCP client of the `mcp` package, spawning `podctl shim` over stdio."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import TextContent

from ..helpers import BrokerProcess

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def shim_params(broker: BrokerProcess, agent: str, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "podctl.orchestrator.cli.main", "shim", "--pod", broker.pod, "--agent", agent,
              "--state", str(broker.state)],
        env=env or None,
    )


async def call(client: Client, tool: str, **args: Any) -> tuple[bool, dict[str, Any]]:
    result = await asyncio.wait_for(client.call_tool(tool, args), timeout=60)
    content = result.content[0]
    assert isinstance(content, TextContent)
    return bool(result.is_error), json.loads(content.text)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


def test_tools_are_listed_with_descriptions(broker: BrokerProcess) -> None:
    async def scenario() -> None:
        async with Client(shim_params(broker, "alice"), read_timeout_seconds=60) as alice:
            tools = {t.name: t for t in (await alice.list_tools()).tools}
            assert set(tools) == TOOLS
            assert all(len(t.description or "") > 40 for t in tools.values())
            assert set(tools["tell"].input_schema["properties"]) == {"to", "text", "urgent"}
            assert set(tools["wait_for_reply"].input_schema["properties"]) == {"ask_id", "timeout_ms"}
            params = {p for t in tools.values() for p in t.input_schema.get("properties", {})}
            assert not params & {"from", "sender", "agent", "token"}, "no tool lets a caller name its sender"
            err, listed = await call(alice, "list_agents")
            assert not err
            assert {a["name"]: a["role"] for a in listed["agents"]} == {
                "alice": "writes code", "bob": "reviews code", "carol": "tests code"
            }

    run(scenario())


def test_ask_and_wait_for_reply_between_two_shims(broker: BrokerProcess) -> None:
    async def scenario() -> None:
        async with AsyncExitStack() as stack:
            alice = await stack.enter_async_context(Client(shim_params(broker, "alice"), read_timeout_seconds=60))
            bob = await stack.enter_async_context(Client(shim_params(broker, "bob"), read_timeout_seconds=60))
            err, asked = await call(alice, "ask", to="bob", text="Is src/app.py ready?")
            assert not err and asked["recipients"] == [{"name": "bob", "state": "stopped"}]
            waiting = asyncio.create_task(call(alice, "wait_for_reply", ask_id=asked["ask_id"], timeout_ms=30000))
            err, inbox = await call(bob, "read_messages")
            [msg] = inbox["messages"]
            assert (msg["from"], msg["kind"], msg["ask_id"]) == ("alice", "ask", asked["ask_id"])
            err, replied = await call(bob, "post_reply", ask_id=msg["ask_id"], text="Yes, ship it.")
            assert not err and replied["followup"] is False
            err, result = await waiting
            assert not err and result["status"] == "replied"
            assert result["replies"][0]["from"] == "bob" and result["replies"][0]["text"] == "Yes, ship it."
            err, checked = await call(alice, "check_replies", ask_id=asked["ask_id"])
            assert checked["status"] == "replied" and checked["delivery"][0]["state"] == "read"
            err, told = await call(bob, "tell", to=["alice", "carol"], text="deploying", urgent=True)
            assert not err and {r["name"] for r in told["recipients"]} == {"alice", "carol"}
            err, inbox = await call(alice, "read_messages")
            assert [(m["kind"], m["urgent"]) for m in inbox["messages"]] == [("tell", True)], "the reply was returned"

    run(scenario())


@pytest.mark.parametrize(
    ("tool", "args", "code"),
    [
        ("tell", {"to": "nobody", "text": "hi"}, "unknown_agent"),
        ("tell", {"to": "bob", "text": ""}, "empty_text"),
        ("ask", {"to": "bob", "text": "y" * 70_000}, "too_large"),
        ("check_replies", {"ask_id": 4242}, "unknown_ask"),
        ("wait_for_reply", {"ask_id": 4242, "timeout_ms": 10}, "unknown_ask"),
        ("post_reply", {"ask_id": 4242, "text": "x"}, "unknown_ask"),
    ],
)
def test_errors_are_tool_errors_a_model_can_read(broker: BrokerProcess, tool: str, args: dict[str, Any], code: str) -> None:
    async def scenario() -> None:
        async with Client(shim_params(broker, "alice"), read_timeout_seconds=60) as alice:
            err, body = await call(alice, tool, **args)
            assert err and body["error"]["code"] == code and body["error"]["message"]
            err, _ = await call(alice, "list_agents")
            assert not err

    run(scenario())


def test_long_wait_returns_pending_below_the_client_timeout(broker: BrokerProcess) -> None:
    async def scenario() -> None:
        async with Client(shim_params(broker, "alice", PODCTL_WAIT_CAP_MS="300"), read_timeout_seconds=60) as alice:
            _, asked = await call(alice, "ask", to="bob", text="slow question")
            err, first = await call(alice, "wait_for_reply", ask_id=asked["ask_id"], timeout_ms=600_000)
            assert not err and first["status"] == "pending" and "again" in first["hint"]
            with broker.client("bob") as bob:
                bob.call("post_reply", ask_id=asked["ask_id"], text="here it is")
            err, second = await call(alice, "wait_for_reply", ask_id=asked["ask_id"], timeout_ms=600_000)
            assert second["status"] == "replied" and second["replies"][0]["text"] == "here it is"

    run(scenario())


def test_pending_wait_survives_broker_restart(broker: BrokerProcess) -> None:
    async def scenario() -> None:
        async with Client(shim_params(broker, "alice"), read_timeout_seconds=90) as alice:
            _, asked = await call(alice, "ask", to="bob", text="question before the crash")
            waiting = asyncio.create_task(call(alice, "wait_for_reply", ask_id=asked["ask_id"], timeout_ms=45_000))
            await asyncio.sleep(0)
            await asyncio.to_thread(broker.kill9)
            await asyncio.to_thread(broker.start)
            with broker.client("bob") as bob:
                assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["question before the crash"]
                bob.call("post_reply", ask_id=asked["ask_id"], text="answer after the restart")
            err, result = await waiting
            assert not err and result["status"] == "replied"
            assert result["replies"][0]["text"] == "answer after the restart"
            err, _ = await call(alice, "tell", to="bob", text="still connected")
            assert not err

    run(scenario())
