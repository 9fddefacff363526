"""What a live view needs from the broker: delivery changes as events, open asks with who is
missing, when each agent entered its state, and what produced a message (origin)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.broker.readonly import ReadOnlyStore

from ..helpers import BrokerProcess, scaled
from .test_routes import start


def collect_events(broker: BrokerProcess, frames: list[dict[str, Any]], stop: threading.Event) -> threading.Thread:
    """Follow the broker's event stream in a thread (the way `tail -f` and `podctl ui` do)."""

    def follow() -> None:
        with broker.client("user") as user:
            try:
                for frame in user.events(since=0):
                    frames.append(frame)
                    if stop.is_set():
                        return
            except wire.BrokerUnavailable:
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def wait_for(frames: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        for frame in list(frames):
            if predicate(frame):
                return frame
        time.sleep(0.01)
    raise AssertionError(f"no such event among {frames}")


def test_injection_and_reads_are_published_as_delivery_events(broker: BrokerProcess) -> None:
    frames: list[dict[str, Any]] = []
    stop = threading.Event()
    with broker.client("alice") as alice, broker.client("bob") as bob, broker.client("carol") as carol:
        told = alice.call("tell", to=["bob", "carol"], text="heads up")["message_id"]
        collect_events(broker, frames, stop)
        wait_for(frames, lambda f: f["event"] == "message" and f["data"]["id"] == told)
        hooked = bob.call("hook", event="tool_done")
        bob.call("ack_injected", claim=hooked["claim"])
        injected = wait_for(frames, lambda f: f["event"] == "delivery" and f["data"]["to"] == "bob")
        assert injected["data"]["ids"] == [told] and injected["data"]["state"] == "injected"
        carol.call("read_messages")
        read = wait_for(frames, lambda f: f["event"] == "delivery" and f["data"]["to"] == "carol")
        assert read["data"] == {"to": "carol", "ids": [told], "state": "read", "ts": read["data"]["ts"]}
        carol.call("read_messages", since=0)
    stop.set()
    carol_events = [f for f in frames if f["event"] == "delivery" and f["data"]["to"] == "carol"]
    assert len(carol_events) == 1, "reading a message again changes nothing and says nothing"


def test_open_asks_list_who_has_not_answered_until_everyone_has(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "all")
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b, \
            broker.client("user") as user:
        asked = w.call("ask", to="review", text="review the diff " + "x" * 500)
        [listed] = user.call("asks")["asks"]
        assert listed["ask_id"] == asked["ask_id"] and listed["route"] == "review" and listed["mode"] == "all"
        assert listed["waiting_on"] == ["rev-a", "rev-b"] and listed["from"] == "writer"
        assert abs(listed["deadline"] - listed["ts"] - 600) < 1, "the route's 10m timeout"
        assert len(listed["text"]) == 200
        a.call("post_reply", ask_id=asked["ask_id"], text="fine")
        [listed] = user.call("asks")["asks"]
        assert listed["waiting_on"] == ["rev-b"]
        assert [t["name"] for t in listed["targets"] if t["reply_id"]] == ["rev-a"]
        b.call("post_reply", ask_id=asked["ask_id"], text="fine too")
        assert user.call("asks")["asks"] == []
        try:
            w.call("asks")
        except wire.BrokerError as exc:
            assert exc.code == wire.FORBIDDEN
        else:
            raise AssertionError("an agent may not list the pod's asks")


def test_an_ask_in_mode_first_is_answered_by_one_reply(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "first")
    with broker.client("writer") as w, broker.client("rev-b") as b, broker.client("user") as user:
        asked = w.call("ask", to="review", text="anyone?")
        assert user.call("asks")["asks"][0]["waiting_on"] == ["rev-a", "rev-b"]
        b.call("post_reply", ask_id=asked["ask_id"], text="me")
        assert user.call("asks")["asks"] == []


def test_status_says_since_when_and_last_activity(broker: BrokerProcess) -> None:
    with broker.client("bob") as bob, broker.client("user") as user:
        before = time.time()
        bob.call("hook", event="turn_start", inject=False)
        [row] = [a for a in user.call("status")["agents"] if a["name"] == "bob"]
        assert row["state"] == "busy" and (row["state_ts"] or 0) >= before and (row.get("last_activity") or 0) >= before
        [carol] = [a for a in user.call("status")["agents"] if a["name"] == "carol"]
        assert carol["last_activity"] is None


def test_a_store_from_before_origins_is_read_without_them(tmp_path: Path) -> None:
    """A pod that went down under an older podctl (schema 2) still shows its history."""
    db = tmp_path / "pod.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, ts REAL, sender TEXT, kind TEXT, recipients TEXT, target TEXT,"
        " text TEXT, ask_id INTEGER, urgent INTEGER, followup INTEGER, client_msg_id TEXT);"
        "CREATE TABLE deliveries(recipient TEXT, message_id INTEGER, queued_at REAL, injected_at REAL, read_at REAL);"
        "INSERT INTO messages VALUES (1, 1.0, 'user', 'tell', '[\"a\"]', 'a', 'hello', NULL, 0, 0, NULL);"
        "PRAGMA user_version=2;"
    )
    conn.close()
    with ReadOnlyStore(db) as store:
        [message] = store.history(0, 10).messages
    assert message["text"] == "hello" and message["origin"] is None


def test_a_pod_with_routes_lists_its_open_asks_while_down(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "all")
    with broker.client("writer") as w:
        w.call("ask", to="review", text="still open when the pod goes down")
    broker.stop()
    with ReadOnlyStore(broker.state / "pod.db") as store:
        [listed] = store.open_asks(time.time(), 10)
    assert listed["waiting_on"] == ["rev-a", "rev-b"]

