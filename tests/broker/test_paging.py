"""Every paged answer says truthfully whether more messages wait, also when the page was cut by
size (`queries.PAGE_BYTES`) before its count: a reader that trusts `more` reads everything.

81 messages, 40 of them 65,000 bytes, hold more than one page of bytes: the pages used to stop
after about 69 with `more: false` (`podctl tail` showed 69 and stopped; `read_messages` left the
rest unread)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from podctl.broker import wire
from podctl.broker.queries import PAGE_BYTES
from podctl.broker.readonly import ReadOnlyStore
from podctl.orchestrator import talk

from ..helpers import TWO_AGENTS, BrokerProcess, LocalBroker, write_pod

BIG = 65_000
COUNT = 81


class AgentCall(Protocol):
    """An operation as one agent that answers the wire's JSON: LocalBroker.call."""

    def __call__(self, agent: str, op: str, **args: object) -> dict[str, Any]: ...


class Sender(Protocol):
    """An operation as one agent whose answer is not read: LocalBroker.call, or one agent's client."""

    def __call__(self, agent: str, op: str, **args: object) -> object: ...


def send_burst(call: Sender) -> list[str]:
    texts = []
    for i in range(COUNT):
        text = f"big {i} " + "x" * BIG if i % 2 else f"small {i}"
        call("alice", "tell", to="bob", text=text[:BIG])
        texts.append(text[:BIG])
    assert sum(len(t) for t in texts) > PAGE_BYTES, "the burst must be more than one page of bytes"
    return texts


def read_all(call: AgentCall, agent: str, op: str, **args: object) -> tuple[list[str], list[bool]]:
    texts, mores = [], []
    while True:
        page = call(agent, op, **args)
        texts += [m["text"] for m in page["messages"]]
        mores.append(page["more"])
        if not page["more"]:
            return texts, mores
        if "since" in args:
            args["since"] = page["next"]


def test_history_and_inboxes_say_more_when_a_page_is_cut_by_size(local_broker: LocalBroker) -> None:
    sent = send_burst(local_broker.call)
    history, mores = read_all(local_broker.call, "user", "history", since=0, limit=1000)
    assert history == sent and len(mores) > 1, "history pages by bytes and says more until the end"
    since, _ = read_all(local_broker.call, "bob", "read_messages", since=0, limit=500)
    assert since == sent
    unseen, mores = read_all(local_broker.call, "bob", "read_messages", limit=500)
    assert unseen == [], "read with since, they are read"
    local_broker.call("alice", "tell", to="carol", text="x")
    for i in range(COUNT):
        local_broker.call("alice", "tell", to="carol", text=f"{i} " + "y" * (BIG - 10))
    unseen, mores = read_all(local_broker.call, "carol", "read_messages", limit=500)
    assert len(unseen) == COUNT + 1 and mores[0] is True


def test_more_is_false_on_the_last_page_cut_by_count(local_broker: LocalBroker) -> None:
    for i in range(4):
        local_broker.call("alice", "tell", to="bob", text=f"m{i}")
    first = local_broker.call("bob", "read_messages", since=0, limit=2)
    assert first["more"] is True
    second = local_broker.call("bob", "read_messages", since=first["next"], limit=2)
    assert [m["text"] for m in second["messages"]] == ["m2", "m3"] and second["more"] is False
    assert local_broker.call("user", "history", since=0, limit=4)["more"] is False


def test_the_store_of_a_pod_that_is_down_pages_by_size_too(local_broker: LocalBroker) -> None:
    sent = send_burst(local_broker.call)
    with ReadOnlyStore(local_broker.paths.db) as store:
        texts, cursor, pages = [], 0, 0
        while True:
            page = store.history(cursor, 1000)
            pages += 1
            texts += [m["text"] for m in page.messages]
            if not page.more:
                break
            cursor = page.messages[-1]["id"]
    assert texts == sent and pages > 1


def test_tail_and_a_subscriber_get_every_message_of_a_long_history(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker: BrokerProcess = start_broker(write_pod(tmp_path / "bus", TWO_AGENTS.format(name="bus")))
    with broker.client("alice") as alice:
        sent = send_burst(lambda agent, op, **args: alice.call(op, **args))
    lines: list[str] = []
    talk.tail("bus", lines.append, lambda _note: None, as_json=True)
    assert [json.loads(line)["text"] for line in lines] == sent, "podctl tail --json reads to the end"
    plain: list[str] = []
    talk.tail("bus", plain.append, lambda _note: None)
    assert len(plain) == COUNT
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sub:
        sub.settimeout(10)
        sub.connect(str(broker.socket))
        sub.sendall(wire.encode(wire.request(1, "subscribe", "user", broker.token("user"), {"since": 0})))
        buf, seen = b"", cast("list[str]", [])
        while len(seen) < COUNT:
            chunk = sub.recv(1 << 20)
            assert chunk, "the broker closed the subscription"
            buf += chunk
            *done, buf = buf.split(b"\n")
            seen += [json.loads(line)["data"]["text"] for line in done if b'"event":"message"' in line]
    assert seen == sent, "the subscriber's replay reads past a page cut by size"
    broker.stop()
    lines.clear()
    talk.tail("bus", lines.append, lambda _note: None, as_json=True)
    assert [json.loads(line)["text"] for line in lines] == sent, "tail of a pod that is down reads to the end"
