"""The broker's limits under hostile or careless clients: no client costs the others their service,
the broker its memory or file descriptors, or the pod its acknowledged messages."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podctl.broker import wire

from ..helpers import TWO_AGENTS, BrokerProcess, wait_until, write_pod


def connect(broker: BrokerProcess) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(broker.socket))
    return sock


def request(broker: BrokerProcess, agent: str, op: str, args: dict[str, Any], req_id: int = 1) -> bytes:
    return wire.encode(wire.request(req_id, op, agent, broker.token(agent), args))


def still_served(broker: BrokerProcess) -> None:
    with broker.client("carol", timeout=5.0) as carol:
        assert carol.call("tell", to="alice", text="still here")["status"] == "queued"


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_client_that_never_reads_its_answers_is_dropped(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        for i in range(40):
            alice.call("tell", to="bob", text=f"{i} " + "x" * 50_000)
    hog = connect(broker)
    hog.setblocking(False)
    frame = request(broker, "user", "history", {"since": 0, "limit": 40})
    sent = 0
    closed = threading.Event()

    def pump() -> None:
        nonlocal sent
        import select

        while not closed.is_set():
            _, ready, _ = select.select([], [hog], [], 0.2)
            if not ready:
                continue
            try:
                hog.send(frame)
                sent += 1
            except BlockingIOError:
                continue
            except OSError:
                closed.set()

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    try:
        for _ in range(5):
            still_served(broker)
        wait_until(closed.is_set, timeout=60, message="the broker to drop the client that does not read")
    finally:
        closed.set()
        pumper.join(timeout=5)
        hog.close()
    still_served(broker)
    assert "does not read its answers" in broker.log.read_text()


def test_unfinished_frames_are_bounded_and_the_biggest_holder_goes_first(broker: BrokerProcess) -> None:
    chunk = b"x" * (1 << 20)
    holders = [connect(broker) for _ in range(12)]
    try:
        for sock in holders:
            sock.settimeout(10)
            try:
                for _ in range(7):
                    sock.sendall(chunk)
            except OSError:
                pass
            still_served(broker)
        answers = [read_until_closed(sock, timeout=0.5) for sock in holders]
        dropped = [a for a in answers if b'"code":"busy"' in a or b"busy" in a]
        assert dropped, "with 84 MB of unfinished frames some holders are dropped"
        huge = connect(broker)
        try:
            huge.settimeout(10)
            try:
                for _ in range(9):
                    huge.sendall(chunk)
            except OSError:
                pass
            answer = read_until_closed(huge, timeout=5)
        finally:
            huge.close()
        assert json.loads(answer.splitlines()[0])["error"]["code"] in (wire.TOO_LARGE, wire.BUSY)
    finally:
        for sock in holders:
            sock.close()
    still_served(broker)


def test_idle_connections_cannot_lock_everyone_out(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start_broker(write_pod(tmp_path / "fds", TWO_AGENTS.format(name="fds")), nofile=256)
    idle: list[socket.socket] = []
    try:
        for _ in range(400):
            try:
                idle.append(connect(broker))
            except OSError:
                break
        with broker.client("alice", timeout=10.0) as alice:
            assert alice.call("hello")["pod"] == "fds", "a new client is served: the idlest ones were evicted"
        with broker.client("bob", timeout=10.0) as bob:
            assert bob.call("tell", to="alice", text="hi")["status"] == "queued"
        assert broker.log.stat().st_size < 200_000, "repeated log lines are rate-limited"
    finally:
        for sock in idle:
            sock.close()


def test_a_deleted_store_is_never_acknowledged_into(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        alice.call("tell", to="bob", text="before")
    (broker.state / "pod.db").unlink()
    with broker.client("alice") as alice:
        try:
            answer: dict[str, Any] = dict(alice.call("tell", to="bob", text="into the void?"))
        except (wire.BrokerError, wire.BrokerUnavailable) as exc:
            answer = {"error": str(exc)}
    assert "message_id" not in answer, "no ack after pod.db was deleted"
    assert broker.proc is not None
    broker.proc.wait(timeout=20)
    assert "deleted or replaced" in broker.log.read_text()


def test_a_subscriber_that_falls_behind_gets_a_gap_marker_and_every_message(broker: BrokerProcess) -> None:
    sub = connect(broker)
    try:
        sub.sendall(request(broker, "user", "subscribe", {"since": 0}))
        with broker.client("alice") as alice:
            sent = [alice.call("tell", to="bob", text=f"big {i} " + "y" * 60_000)["message_id"] for i in range(40)]
            for _ in range(800):
                alice.call("hook", event="turn_start", inject=False)
                alice.call("hook", event="turn_end", inject=False)
            sent.append(alice.call("tell", to="bob", text="last")["message_id"])
        sub.settimeout(5)
        buf = b""
        events: list[dict[str, Any]] = []
        while not any(e.get("event") == "message" and e["data"]["id"] == sent[-1] for e in events):
            chunk = sub.recv(1 << 20)
            assert chunk, "the broker closed the subscription"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            events += [json.loads(line) for line in lines if line]
    finally:
        sub.close()
    gaps = [e for e in events if e.get("event") == "gap"]
    assert gaps and gaps[0]["data"]["skipped"] > 0, "the reader is told it fell behind"
    seen = {e["data"]["id"] for e in events if e.get("event") == "message"}
    assert set(sent) <= seen, "no message is lost to a slow reader"


def test_a_full_accept_backlog_is_waited_out_not_reported_as_a_dead_broker(tmp_path: Path) -> None:
    """A Unix socket answers EAGAIN at once while its backlog is full (seen when a broker at its fd
    limit evicts idle clients): the client tries again within its timeout."""
    path = tmp_path / "busy.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    queued: list[socket.socket] = []
    try:
        while True:
            pending = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            pending.setblocking(False)
            try:
                pending.connect(str(path))
            except BlockingIOError:
                pending.close()
                break
            queued.append(pending)
        answered = threading.Event()

        def serve() -> None:
            for _ in range(len(queued) + 1):
                conn, _ = server.accept()
                if conn.recv(65536):
                    answered.set()  # before the answer: the client may read it before this thread runs on
                    conn.sendall(wire.encode(wire.ok(1, {"pod": "busy"})))
                conn.close()

        client = wire.Client(path, "alice", "token", timeout=5.0)
        threading.Timer(0.2, lambda: threading.Thread(target=serve, daemon=True).start()).start()
        for sock in queued:
            sock.close()
        assert client.call_untyped("hello") == {"pod": "busy"}
        assert answered.is_set()
        client.close()
    finally:
        server.close()
