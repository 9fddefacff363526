"""Two sites of one pod on this machine, bridged by their real bridges over a real nats-server."""

from __future__ import annotations

from collections.abc import Callable

from ..helpers import wait_until
from .harness import SiteProcesses


def test_a_tell_crosses_to_the_other_site_and_its_receipts_come_back(two_sites: Callable[..., dict[str, SiteProcesses]]) -> None:
    sites = two_sites()
    a, b = sites["a"], sites["b"]
    wait_until(lambda: a.link_up() and b.link_up(), timeout=20, message="both bridges connected")
    sent = a.call("writer", "tell", to="reviewer", text="hello from a")
    got = wait_until(lambda: b.call("reviewer", "read_messages")["messages"], timeout=10, message="the tell at b")
    assert [(m["from"], m["text"]) for m in got] == [("writer", "hello from a")]

    def read_at_a() -> bool:
        history = a.call("user", "history")["messages"]
        return any(m["id"] == sent["message_id"] and m["delivery"][0]["state"] == "read" for m in history)

    wait_until(read_at_a, timeout=10, message="the read receipt at a")
