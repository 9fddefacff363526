"""The shim is a thin relay: standard library only, transparent across broker restarts, and
useful (with a clear error) while the broker is down."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import subprocess
import sys
import threading
from typing import Any

import anyio
from podctl.broker import wire
from podctl.broker.mcp_session import builtin_copy
from podctl.broker.wire import MAX_REQUEST_BYTES
from podctl.hooks.adapter import SHIM_DIR

from ..helpers import BrokerProcess, broker_call, scaled, wait_until
from .test_shim import TOOLS, call, run, shim_params

SHIM_ALLOWED = {"podctl", "podctl.broker", "podctl.broker.wire", "podctl.broker.codec", "podctl.pods",
                "podctl.pods.layout", "podctl.shim", "podctl.shim.relay"}
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


TOOL_LIST_CHARS = 2400
"""What the seven tools may cost every model request of every agent: the tools `tools/list` returns, as JSON."""


def test_the_tool_list_stays_short() -> None:
    """The tools' schemas ride in every model request: at most TOOL_LIST_CHARS characters as JSON,
    with no generated `title`s (shared wording lives once in the server's instructions)."""
    answers = anyio.run(builtin_copy)
    for era in ("legacy", "modern"):
        listed = answers[era]["tools/list"]
        assert {t["name"] for t in listed["tools"]} == TOOLS
        size = len(json.dumps(listed["tools"], ensure_ascii=False))
        assert size <= TOOL_LIST_CHARS, f"the tools are {size} characters as JSON ({era}), over {TOOL_LIST_CHARS}"
        for tool in listed["tools"]:
            schema = tool["inputSchema"]
            titled = ["(arguments)"] * ("title" in schema) + [n for n, p in schema["properties"].items() if "title" in p]
            assert not titled, f"{tool['name']} has generated titles: {titled}"


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
        return bool(next(a for a in broker_call("bus", "status")["agents"] if a["name"] == "alice")["tools_ready"])

    assert not ready()
    sock = mcp_connection(broker, "fedcba9876543210")
    assert ready()
    sock.close()
    wait_until(lambda: not ready(), timeout=10, message="the broker to see the session end")


def relay_argv(broker: BrokerProcess, agent: str, *extra: str) -> list[str]:
    """The relay exactly as a CLI runs it (`python -I -S shim/fast.py`)."""
    return [sys.executable, "-I", "-S", str(SHIM_DIR / "fast.py"), "--pod", broker.pod, "--agent", agent, *extra]


def test_the_relay_answers_any_line_and_never_forwards_a_lines_tail(broker: BrokerProcess) -> None:
    """One malformed line used to kill the relay (under -I -S the C parser raises SystemError), and
    the CLI lost every podctl tool; an over-long line was cut and its tail read as a message."""
    smuggled = {"jsonrpc": "2.0", "id": 77, "method": "tools/call",
                "params": {"name": "tell", "arguments": {"to": "bob", "text": "smuggled"}}}
    over_long = b" " * (MAX_REQUEST_BYTES + 300_000) + json.dumps(smuggled).encode() + b"\n"
    bad_lines = [
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"\n', -32700),  # cut short: SystemError under -I -S
        (b"not json\n", -32700),
        (b"\xff\xfe\n", -32700),
        (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}\n", -32700),
        (b'[{"jsonrpc":"2.0","id":2,"method":"ping"}]\n', -32600),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}\n', -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}\n', -32600),
        (b'{"jsonrpc":"1.0","id":3,"method":"ping"}\n', -32600),
        (over_long, -32600),
    ]
    relay = subprocess.Popen(relay_argv(broker, "alice", "--state", str(broker.state)),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert relay.stdin is not None and relay.stdout is not None
    out: queue.Queue[bytes] = queue.Queue()
    stdout = relay.stdout

    def pump() -> None:
        for line in iter(stdout.readline, b""):
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def answer_line() -> dict[str, Any]:
        try:
            answer: dict[str, Any] = json.loads(out.get(timeout=scaled(20)))
            return answer
        except queue.Empty:
            raise AssertionError(f"no answer from the relay (exit status {relay.poll()})") from None

    try:
        for line, code in bad_lines:
            relay.stdin.write(line)
            relay.stdin.flush()
            answer = answer_line()
            assert answer["error"]["code"] == code, (line[:50], answer)
            assert answer["id"] in (None, 3), answer
        for request in ({"jsonrpc": "2.0", "id": 10, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                 "params": {"name": "tell", "arguments": {"to": "bob", "text": "split \ud83d"}}},
                {"jsonrpc": "2.0", "id": 12, "method": "tools/call",
                 "params": {"name": "tell", "arguments": {"to": "bob", "text": "after"}}}):
            relay.stdin.write(json.dumps(request).encode() + b"\n")
        relay.stdin.flush()
        answers = {a["id"]: a for a in (answer_line() for _ in range(3))}
        surrogate = json.loads(answers[11]["result"]["content"][0]["text"])
        assert answers[11]["result"]["isError"] and surrogate["error"]["code"] == wire.BAD_REQUEST, surrogate
        assert not answers[12]["result"]["isError"]
        assert relay.poll() is None, "the relay lives on"
    finally:
        relay.stdin.close()
        relay.wait(timeout=10)
        relay.stdout.close()
        assert relay.stderr is not None
        relay.stderr.close()
    with broker.client("bob") as bob:
        assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["after"], "no line's tail was sent"


def test_a_call_in_flight_when_the_broker_dies_gets_the_answer_of_a_broker_that_is_down(broker: BrokerProcess) -> None:
    """Calls made after a kill got the promised error at the hold deadline; the one in flight never did."""

    async def scenario() -> None:
        from mcp import Client

        async with Client(shim_params(broker, "alice", PODCTL_HOLD_MS="1500"), read_timeout_seconds=120) as alice:
            _, asked = await call(alice, "ask", to="bob", text="are you there?")
            waiting = asyncio.create_task(call(alice, "wait_for_reply", ask_id=asked["ask_id"], timeout_ms=45_000))
            err, _ = await call(alice, "list_agents")  # answered after the wait reached the broker
            assert not err
            await asyncio.to_thread(broker.kill9)
            err, answer = await asyncio.wait_for(waiting, timeout=scaled(30))
            assert err and answer["error"]["code"] == "broker_unavailable", answer
            assert "podctl resume bus" in answer["error"]["message"]

    run(scenario())


def test_an_explicit_token_file_wins_over_podctl_token(broker: BrokerProcess) -> None:
    async def scenario() -> None:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(
            command=sys.executable,
            args=relay_argv(broker, "alice", "--socket", str(broker.socket), "--token-file",
                            str(broker.state / "agents" / "alice" / "token"))[1:],
            env={"PODCTL_TOKEN": broker.token("bob")},
        )
        async with Client(params, read_timeout_seconds=60) as alice:
            err, sent = await call(alice, "tell", to="bob", text="as alice")
            assert not err and sent["status"] == "queued", sent

    run(scenario())
    with broker.client("bob") as bob:
        assert [(m["from"], m["text"]) for m in bob.call("read_messages")["messages"]] == [("alice", "as alice")]


def test_a_token_the_broker_refuses_is_reported_as_such_not_as_a_broker_that_is_down(broker: BrokerProcess) -> None:
    async def scenario() -> None:
        from mcp import Client

        async with Client(shim_params(broker, "alice", PODCTL_TOKEN=broker.token("bob")), read_timeout_seconds=60) as alice:
            err, answer = await call(alice, "tell", to="bob", text="who am I?")
            assert err and answer["error"]["code"] == wire.AUTH, answer
            message = answer["error"]["message"]
            assert "not running" not in message
            assert "refused" in message and "agent alice" in message and "pod bus" in message, message
            assert "PODCTL_TOKEN" in message and "podctl restart bus alice" in message, message

    run(scenario())
