"""An agent's MCP sessions are bounded like wire connections: no session or agent can stall the
broker for the others, grow its memory, or leave the store wedged; every line gets an answer.

The attack these guard against: one session sent 20,000 `wait_for_reply` calls without reading
the answers; other agents' tells waited 10-45 s, the broker grew to 668 MB, and once every later
write failed ("cannot start a transaction within a transaction"). 3,000 sessions from one token
took it from 91 to 611 MB.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import weakref
from functools import partial
from typing import Any

from podctl.broker import wire
from podctl.broker.server import AGENT_IN_FLIGHT, MCP_SESSIONS_PER_AGENT
from podctl.broker.slots import MAX_IN_FLIGHT

from ..helpers import BrokerProcess, scaled, wait_until
from ..shim.test_relay import mcp_connection


def rss_mb(broker: BrokerProcess) -> float:
    assert broker.proc is not None
    with open(f"/proc/{broker.proc.pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def tool_call(req_id: int, name: str, **arguments: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode() + b"\n"


_buffers: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


def read_line(sock: socket.socket) -> bytes:
    """One line of the session (several may come in one read: the rest waits for the next call)."""
    buf = _buffers.pop(sock, b"")
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the broker closed the connection"
        buf += chunk
    line, _, _buffers[sock] = buf.partition(b"\n")
    return line


def ping(sock: socket.socket, req_id: int) -> None:
    """A request answered once every line before it was read (the broker reads a session in order)."""
    sock.sendall(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "ping"}).encode() + b"\n")
    while json.loads(read_line(sock)).get("id") != req_id:
        pass


def answers(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    return [json.loads(read_line(sock)) for _ in range(count)]


def open_ask(broker: BrokerProcess) -> int:
    with broker.client("alice") as alice:
        return alice.call("ask", to="bob", text="still there?")["ask_id"]


def tell_latency(broker: BrokerProcess) -> float:
    started = time.monotonic()
    with broker.client("bob", timeout=60) as bob:
        assert bob.call("tell", to="carol", text="hi")["status"] == "queued"
    return time.monotonic() - started


def log_is_clean(broker: BrokerProcess) -> None:
    log = broker.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log and "transaction within a transaction" not in log, log[-4000:]


def test_a_flood_of_tool_calls_from_one_session_costs_the_others_nothing(broker: BrokerProcess) -> None:
    ask_id = open_ask(broker)
    before = rss_mb(broker)
    hog = mcp_connection(broker, "f" * 16)
    flood = b"".join(tool_call(i, "wait_for_reply", ask_id=ask_id, timeout_ms=300_000) for i in range(100, 20_100))
    all_read = threading.Event()

    def pump() -> None:
        try:
            hog.sendall(flood)
            all_read.set()
        except OSError:
            pass

    pumper = threading.Thread(target=pump, daemon=True)
    hog.settimeout(None)
    pumper.start()
    peak = before
    try:
        for _ in range(10):
            assert tell_latency(broker) < scaled(1.0), "another agent's tell is answered at once"
            peak = max(peak, rss_mb(broker))
        assert not all_read.is_set(), "the broker reads a session no further than its caps (back-pressure)"
    finally:
        hog.shutdown(socket.SHUT_RDWR)
        hog.close()
        pumper.join(timeout=10)
    assert peak - before < 60, f"the broker grew from {before:.0f} to {peak:.0f} MB"
    assert tell_latency(broker) < scaled(1.0)
    with broker.client("alice") as alice:
        assert alice.call("hook", event="turn_start", inject=False)["state"] == "busy", "writes still work"
    log_is_clean(broker)


def test_an_agents_calls_beyond_its_cap_wait_for_its_own_not_the_others(broker: BrokerProcess) -> None:
    ask_id = open_ask(broker)
    sessions = [mcp_connection(broker, f"{n:016x}") for n in range(AGENT_IN_FLIGHT // MAX_IN_FLIGHT + 1)]
    try:
        for sock in sessions:
            sock.sendall(b"".join(tool_call(i, "wait_for_reply", ask_id=ask_id, timeout_ms=300_000)
                                  for i in range(10, 10 + MAX_IN_FLIGHT)))

        def alice_waits() -> bool:
            try:
                with broker.client("alice", timeout=0.3) as alice:
                    alice.call("list_agents")
                return False
            except wire.BrokerUnavailable:
                return True

        wait_until(alice_waits, timeout=20, message=f"alice's request beyond her {AGENT_IN_FLIGHT} running ones to wait")
        assert tell_latency(broker) < scaled(1.0), "bob is not held up by alice's calls"
        with broker.client("bob") as bob:
            bob.call("post_reply", ask_id=ask_id, text="yes")
        for sock in sessions:
            got = answers(sock, MAX_IN_FLIGHT)
            assert sorted(a["id"] for a in got) == list(range(10, 10 + MAX_IN_FLIGHT))
            assert all(json.loads(a["result"]["content"][0]["text"])["status"] == "replied" for a in got)
        with broker.client("alice") as alice:
            assert alice.call("list_agents")["agents"], "alice is served again once her calls ended"
    finally:
        for sock in sessions:
            sock.close()
    log_is_clean(broker)


def closed(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_an_agent_has_at_most_its_cap_of_mcp_sessions_and_a_new_one_always_gets_in(broker: BrokerProcess) -> None:
    ask_id = open_ask(broker)
    busy = mcp_connection(broker, "b" * 16)
    busy.sendall(tool_call(2, "wait_for_reply", ask_id=ask_id, timeout_ms=300_000))
    ping(busy, 3)
    before = rss_mb(broker)
    opened = []
    try:
        for n in range(300):
            opened.append(mcp_connection(broker, f"{n:016x}"))
            if len(opened) > MCP_SESSIONS_PER_AGENT:
                opened.pop(0).close()  # keep this test's own file descriptors few; the broker closed them
        grown = rss_mb(broker) - before
        newest = opened[-(MCP_SESSIONS_PER_AGENT - 1):]
        for n, sock in enumerate(newest):
            ping(sock, 100 + n)
        assert all(wait_until(partial(closed, sock), timeout=10) for sock in opened[:-(MCP_SESSIONS_PER_AGENT - 1)])
        ping(busy, 4)
        assert grown < 30, f"300 sessions of one agent grew the broker by {grown:.0f} MB"
        with broker.client("bob") as bob:
            bob.call("post_reply", ask_id=ask_id, text="yes")
        assert json.loads(read_line(busy))["id"] == 2, "the session with a call running was kept"
    finally:
        busy.close()
        for sock in opened:
            sock.close()


def test_mcp_lines_that_are_no_valid_request_are_answered(broker: BrokerProcess) -> None:
    sock = mcp_connection(broker, "c" * 16)
    try:
        cases: list[tuple[bytes, Any, int | None]] = [
            (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"tell","arguments":'
             b'{"to":"bob","text":"split \\ud83d"}}}\n', 5, None),
            (b'{"jsonrpc":"2.0","id":6,"method":"ping","x":' + b"[" * 1000 + b"]" * 1000 + b"}\n", None, -32700),
            (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}\n', None, -32600),
            (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}\n', None, -32600),
            (b'[{"jsonrpc":"2.0","id":7,"method":"ping"}]\n', None, -32600),
            (b"not json\n", None, -32700),
            (b'{"jsonrpc":"2.0","id":8,"method":"ping","params":[1]}\n', 8, -32600),
        ]
        for line, req_id, code in cases:
            sock.sendall(line)
            answer = json.loads(read_line(sock))
            assert answer["id"] == req_id, (line[:60], answer)
            if code is None:
                assert answer["result"]["isError"] is True, answer
                error = json.loads(answer["result"]["content"][0]["text"])["error"]
                assert error["code"] == wire.BAD_REQUEST and "lone surrogate" in error["message"], error
            else:
                assert answer["error"]["code"] == code, answer
        sock.sendall(tool_call(9, "tell", to="bob", text="whole \U0001f600"))
        answer = json.loads(read_line(sock))
        assert answer["id"] == 9 and not answer["result"]["isError"]
    finally:
        sock.close()
    log_is_clean(broker)


def test_a_client_that_goes_away_mid_call_is_one_info_line(broker: BrokerProcess) -> None:
    """A normal agent restart logged an ERROR with a 20-line ExceptionGroup ... ConnectionResetError."""
    ask_id = open_ask(broker)
    sock = mcp_connection(broker, "d" * 16)
    sock.sendall(tool_call(2, "wait_for_reply", ask_id=ask_id, timeout_ms=300_000))
    ping(sock, 3)
    sock.close()

    def tools_down() -> bool:
        with broker.client("user") as user:
            return not next(a for a in user.call("status")["agents"] if a["name"] == "alice")["tools_ready"]

    wait_until(tools_down, timeout=10, message="the broker to see the session end")
    wait_until(lambda: "MCP session of alice ended" in broker.log.read_text(), timeout=10)
    log = broker.log.read_text()
    assert [line for line in log.splitlines() if "alice" in line] == [
        line for line in log.splitlines() if "INFO" in line and "MCP session of alice ended" in line
    ], log
    log_is_clean(broker)


def test_a_call_the_client_cancels_gives_its_slot_back(broker: BrokerProcess) -> None:
    """A cancelled request is never answered (MCP): its slot must come back all the same."""
    ask_id = open_ask(broker)
    sock = mcp_connection(broker, "e" * 16)
    try:
        for n in range(MAX_IN_FLIGHT * 3):
            sock.sendall(tool_call(1000 + n, "wait_for_reply", ask_id=ask_id, timeout_ms=300_000))
            sock.sendall(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                     "params": {"requestId": 1000 + n, "reason": "esc"}}).encode() + b"\n")
        ping(sock, 5)
    finally:
        sock.close()
