"""Hostile or malformed requests on the raw socket: each gets a clear error and costs nothing else."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

import pytest
from podctl.broker import wire

from ..helpers import BrokerProcess, LocalBroker


def raw_call(broker: BrokerProcess, payload: bytes, timeout: float = 10.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(broker.socket))
        sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "the broker closed the connection without answering"
            data += chunk
    frame: dict[str, Any] = json.loads(data)
    return frame


def frame(broker: BrokerProcess, op: str, args_json: str, agent: str = "alice") -> bytes:
    token = broker.token(agent)
    return f'{{"v":1,"id":1,"op":"{op}","agent":"{agent}","token":"{token}","args":{args_json}}}\n'.encode()


@pytest.mark.parametrize(
    ("op", "args_json"),
    [
        ("wait_for_reply", '{"ask_id":1,"timeout_ms":NaN}'),
        ("wait_for_reply", '{"ask_id":1,"timeout_ms":Infinity}'),
        ("wait_for_reply", '{"ask_id":1,"timeout_ms":1e400}'),
        ("prune", '{"older_than_s":-Infinity}'),
    ],
)
def test_numbers_json_cannot_carry_are_bad_requests_answered_as_valid_json(
    broker: BrokerProcess, op: str, args_json: str
) -> None:
    agent = "user" if op == "prune" else "alice"
    answer = raw_call(broker, frame(broker, op, args_json, agent))
    assert answer["ok"] is False and answer["error"]["code"] == wire.BAD_REQUEST, answer
    with broker.client("alice") as alice:
        ask_id = alice.call("ask", to="bob", text="still there?")["ask_id"]
        started = time.monotonic()
        result = alice.call("wait_for_reply", ask_id=ask_id, timeout_ms=100, timeout=5.0)
        assert result["status"] == "timeout"
        assert time.monotonic() - started < 4.0, "the broker's timers still work"


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("wait_for_reply", {"ask_id": 10**29, "timeout_ms": 10}),
        ("wait_for_reply", {"ask_id": 1, "timeout_ms": -5}),
        ("read_messages", {"since": 10**20}),
        ("tell", {"to": "bob", "text": "hi", "urgent": "yes"}),
        ("tell", {"to": "bob", "text": "hi", "client_msg_id": {"a": 1}}),
        ("tell", {"to": "bob", "text": "hi", "sneaky": 1}),
        ("tell", {"to": ["bob"] * 1000, "text": "hi"}),
        ("hook", {"event": ["turn_end"]}),
        ("ack_injected", {"claim": 7}),
    ],
)
def test_bad_numbers_and_types_are_bad_requests_naming_the_argument(local_broker: LocalBroker, op: str, args: dict[str, Any]) -> None:
    with pytest.raises(wire.BrokerError) as err:
        local_broker.call("alice", op, **args)
    assert err.value.code == wire.BAD_REQUEST and f"bad arguments for {op}" in err.value.message
    assert local_broker.call("alice", "tell", to="bob", text="fine")["status"] == "queued"


def test_one_malformed_request_never_fails_the_tells_of_others(broker: BrokerProcess) -> None:
    """A dict as client_msg_id used to fail every tell of the same group commit ("unhashable type")."""
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def sender(agent: str, count: int) -> None:
        try:
            with broker.client(agent, timeout=30) as client:
                for i in range(count):
                    results.append(dict(client.call("tell", to="carol", text=f"{agent} {i}")))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def saboteur() -> None:
        for _ in range(50):
            raw_call(broker, frame(broker, "tell", '{"to":"carol","text":"x","client_msg_id":{"a":1}}', agent="bob"))

    threads = [threading.Thread(target=sender, args=(a, 300)) for a in ("alice", "user")]
    threads.append(threading.Thread(target=saboteur))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 600 and all(r["status"] == "queued" for r in results)
    with broker.client("carol") as carol:
        texts = []
        while page := carol.call("read_messages", limit=500)["messages"]:
            texts += [m["text"] for m in page]
    assert len(texts) == 600


def test_reusing_a_client_msg_id_for_another_message_is_a_conflict(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        first = alice.call("tell", to="bob", text="deploy", client_msg_id="m-1")
        again = alice.call("tell", to="bob", text="deploy", client_msg_id="m-1")
        assert again["message_id"] == first["message_id"], "a retry is stored once"
        with pytest.raises(wire.BrokerError) as err:
            alice.call("tell", to="carol", text="deploy", client_msg_id="m-1")
        assert err.value.code == wire.CONFLICT and "m-1" in err.value.message
    with broker.client("carol") as carol:
        assert carol.call("read_messages")["messages"] == []


def test_a_frame_nested_too_deeply_or_holding_a_lone_surrogate_is_a_bad_request(broker: BrokerProcess) -> None:
    """A frame nested 1,000 deep got no answer and logged a traceback each time (16.7 MiB of log in
    25 s); a lone surrogate (JS writes half a split emoji as "\\ud83d") failed inside the broker."""
    deep = b'{"v":1,"id":1,"op":"hello","agent":"alice","token":"x","args":' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    for _ in range(30):
        answer = raw_call(broker, deep)
        assert answer["ok"] is False and answer["error"]["code"] == wire.BAD_REQUEST, answer
        assert "nested too deeply" in answer["error"]["message"]
    answer = raw_call(broker, frame(broker, "tell", '{"to":"bob","text":"split \\ud83d"}'))
    assert (answer["id"], answer["error"]["code"]) == (1, wire.BAD_REQUEST), "answered by its id, so its client hears it"
    assert "lone surrogate" in answer["error"]["message"]
    with broker.client("alice") as alice:
        assert alice.call("tell", to="bob", text="whole \U0001f600")["status"] == "queued"
    log = broker.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


def test_a_traceback_repeated_from_one_place_is_logged_once_a_window() -> None:
    """asyncio names each task in its message, so each traceback used to count as a new line."""
    import logging

    from podctl.broker.daemon import RepeatFilter

    repeat = RepeatFilter()
    passed = []
    for n in range(100):
        try:
            raise RecursionError("too deep")
        except RecursionError:
            record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, f"Task-{n} exception was never retrieved",
                                       None, sys.exc_info())
        passed.append(repeat.filter(record))
    assert passed.count(True) == 1
