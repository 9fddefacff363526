"""The shim is a thin relay: standard library only, transparent across broker restarts, and
useful (with a clear error) while the broker is down."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import anyio
from podctl.broker import wire
from podctl.broker.mcp_session import builtin_copy
from podctl.hooks.adapter import SHIM_DIR

from ..helpers import BrokerProcess, broker_call, wait_until
from .test_shim import TOOLS, call, run, shim_params

SHIM_ALLOWED = {"podctl", "podctl.broker", "podctl.broker.wire", "podctl.broker.codec", "podctl.shim",
                "podctl.shim.relay"}
STDLIB_ALLOWED = {"_json", "_socket", "time", "select", "__future__", "os", "stat", "_stat", "posixpath",
                  "genericpath", "_collections_abc"}


def imported(argv: list[str], stdin: str = "") -> set[str]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line} - {"package"}


def test_the_relay_imports_no_sdk_and_no_pydantic(broker: BrokerProcess) -> None:
    argv = [sys.executable, "-I", "-S", "-X", "importtime", str(SHIM_DIR / "fast.py"), "--pod", "bus", "--agent",
            "alice", "--state", str(broker.state)]
    baseline = imported([sys.executable, "-I", "-S", "-X", "importtime", "-c", "pass"])
    found = imported(argv) - baseline
    ours = {m for m in found if m.startswith("podctl")}
    assert ours <= SHIM_ALLOWED, sorted(ours - SHIM_ALLOWED)
    assert found - ours <= STDLIB_ALLOWED, sorted(found - ours - STDLIB_ALLOWED)


def test_the_builtin_copy_is_the_brokers_own() -> None:
    recorded = json.loads((SHIM_DIR / "builtin.json").read_text())
    assert recorded == anyio.run(builtin_copy), (
        "shim/builtin.json is stale: run `python -m podctl.broker.mcp_session shim/builtin.json`"
    )


def test_broker_down_at_start_then_up(broker: BrokerProcess) -> None:
    broker.stop()

    async def scenario() -> None:
        from mcp import Client

        async with Client(shim_params(broker, "alice"), read_timeout_seconds=60) as alice:
            tools = {t.name: t for t in (await alice.list_tools()).tools}
            assert set(tools) == TOOLS, "the tool list comes from the built-in copy"
            err, answer = await call(alice, "tell", to="bob", text="anyone?")
            assert err and answer["error"]["code"] == "broker_unavailable"
            assert "podctl resume bus" in answer["error"]["message"]
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(
                wait_until, lambda: next(a for a in broker_call("bus", "status")["agents"] if a["name"] == "alice")["tools_ready"],
                15, 0.05, "the relay to reach the broker on its own and say the tools are up",
            )
            err, sent = await call(alice, "tell", to="bob", text="now?")
            assert not err and sent["status"] == "queued"
            live = {t.name: t for t in (await alice.list_tools()).tools}
            assert {n: (t.description, t.input_schema) for n, t in live.items()} == {
                n: (t.description, t.input_schema) for n, t in tools.items()
            }, "the built-in copy is what the broker serves"

    run(scenario())
    with broker.client("bob") as bob:
        assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["now?"]


def mcp_connection(broker: BrokerProcess, session: str, agent: str = "alice") -> socket.socket:
    """An MCP session over the raw socket, as the relay opens it, initialized."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(broker.socket))
    sock.sendall(wire.encode(wire.request(1, "mcp", agent, broker.token(agent), {"session": session})))
    assert json.loads(read_line(sock))["ok"]
    for request in ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"}):
        sock.sendall(json.dumps(request).encode() + b"\n")
    assert json.loads(read_line(sock))["id"] == 1
    return sock


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def test_a_tool_call_sent_again_after_a_reconnect_is_stored_once(broker: BrokerProcess) -> None:
    """What the relay does after a broker restart: the same session, the same request id."""
    request = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "tell", "arguments": {"to": "bob", "text": "exactly once"}}}
    ids = []
    for _ in range(2):
        with mcp_connection(broker, "0123456789abcdef") as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(read_line(sock))
            ids.append(json.loads(answer["result"]["content"][0]["text"])["message_id"])
    assert ids[0] == ids[1]
    with broker.client("bob") as bob:
        assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["exactly once"]


def test_an_agents_tools_are_up_while_its_relay_is_connected(broker: BrokerProcess) -> None:
    def ready() -> bool:
        return next(a for a in broker_call("bus", "status")["agents"] if a["name"] == "alice")["tools_ready"]

    assert not ready()
    sock = mcp_connection(broker, "fedcba9876543210")
    assert ready()
    sock.close()
    wait_until(lambda: not ready(), timeout=10, message="the broker to see the session end")
