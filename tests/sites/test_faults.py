"""Faults during a burst of tells across the bridge: kill -9 of the NATS server, of either broker, of a
bridge, and a site down for a while. Every acknowledged message arrives exactly once, its receipts come
back, and no process is left behind (the `two_sites` fixture checks that)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from podctl.broker.wire import BrokerError, BrokerUnavailable

from ..helpers import scaled, wait_until
from .harness import NatsServer, SiteProcesses

BURST = 200


class Burst:
    """Tells from writer (site a) to reviewer (site b), each sent until its broker acknowledges it (a retry
    carries the same client_msg_id, so it is stored once), in a thread of its own."""

    def __init__(self, site: SiteProcesses, count: int = BURST) -> None:
        self.site = site
        self.count = count
        self.acked: dict[str, int] = {}
        self.states: set[str] = set()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.half = threading.Event()

    def start(self) -> Burst:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            client = self.site.client("writer", timeout=5.0)
            deadline = time.monotonic() + scaled(120)
            for n in range(self.count):
                text = f"burst {n}"
                while True:
                    try:
                        got = client.call("tell", to="reviewer", text=text, client_msg_id=f"burst-{n}")
                        break
                    except (BrokerUnavailable, OSError):
                        assert time.monotonic() < deadline, "the broker never came back"
                        time.sleep(0.05)
                self.acked[text] = got["message_id"]
                self.states.add(got["status"])
                if n == self.count // 2:
                    self.half.set()
            client.close()
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
            self.half.set()

    def join(self) -> None:
        self.thread.join(timeout=scaled(180))
        assert not self.thread.is_alive(), "the burst did not finish"
        if self.error is not None:
            raise self.error
        assert len(self.acked) == self.count and self.states == {"queued"}


def texts_at(site: SiteProcesses) -> Counter[str]:
    counts: Counter[str] = Counter()
    cursor = 0
    while True:
        page = site.call("user", "history", since=cursor, limit=1000)
        counts.update(m["text"] for m in page["messages"] if m["from"] == "writer")
        cursor = page["next"]
        if not page["more"]:
            return counts


def all_read_at_a(site: SiteProcesses, burst: Burst) -> bool:
    wanted = set(burst.acked.values())
    cursor, read = 0, set()
    while True:
        page = site.call("user", "history", since=cursor, limit=1000)
        read |= {m["id"] for m in page["messages"]
                 if m["id"] in wanted and all(d["state"] == "read" for d in m["delivery"])}
        cursor = page["next"]
        if not page["more"]:
            return read == wanted


def check_exactly_once_with_receipts(a: SiteProcesses, b: SiteProcesses, burst: Burst) -> None:
    burst.join()
    expected = Counter(burst.acked.keys())

    def arrived() -> bool:
        got = texts_at(b)
        if any(v > 1 for v in got.values()):
            pytest.fail(f"stored twice at b: {got - expected}")
        return got == expected

    try:
        wait_until(arrived, timeout=90, interval=0.2, message="every acknowledged tell at site b")
    except AssertionError:
        missing = sorted(set(expected) - set(texts_at(b)), key=lambda t: int(t.split()[-1]))
        raise AssertionError(f"{len(missing)} never arrived at b ({missing[:5]}...)\n{a.logs()}\n{b.logs()}") from None

    def read_everything() -> bool:
        while b.call("reviewer", "read_messages", limit=500)["messages"]:
            pass
        return True

    read_everything()
    wait_until(lambda: all_read_at_a(a, burst), timeout=60, interval=0.2, message="every read receipt back at site a")
    assert texts_at(b) == expected, "nothing arrived twice"


def connected(sites: dict[str, SiteProcesses]) -> None:
    wait_until(lambda: all(s.link_up() for s in sites.values()), timeout=30, message="both bridges connected")


def test_kill_9_of_the_nats_server_during_a_burst(two_sites: Callable[..., dict[str, SiteProcesses]],
                                                   nats_server: NatsServer) -> None:
    sites = two_sites()
    a, b = sites["a"], sites["b"]
    connected(sites)
    burst = Burst(a).start()
    burst.half.wait(timeout=scaled(60))
    nats_server.kill9()
    wait_until(lambda: not a.link_up(), timeout=30, message="site a sees the link down")
    nats_server.start()
    check_exactly_once_with_receipts(a, b, burst)


@pytest.mark.parametrize("which", ["a", "b"])
def test_kill_9_of_a_broker_during_a_burst(two_sites: Callable[..., dict[str, SiteProcesses]], which: str) -> None:
    sites = two_sites()
    a, b = sites["a"], sites["b"]
    connected(sites)
    burst = Burst(a).start()
    burst.half.wait(timeout=scaled(60))
    sites[which].kill9("broker")
    time.sleep(0.5)  # the other side works on meanwhile (a bridge finds its broker gone)
    sites[which].start_broker()
    check_exactly_once_with_receipts(a, b, burst)


@pytest.mark.parametrize("which", ["a", "b"])
def test_kill_9_of_a_bridge_during_a_burst(two_sites: Callable[..., dict[str, SiteProcesses]], which: str) -> None:
    sites = two_sites()
    a, b = sites["a"], sites["b"]
    connected(sites)
    burst = Burst(a).start()
    burst.half.wait(timeout=scaled(60))
    sites[which].kill9("bridge")
    sites[which].start_bridge()
    check_exactly_once_with_receipts(a, b, burst)


@pytest.mark.parametrize("outage_s", [5.0, 30.0], ids=["5s", "30s"])
def test_a_site_down_during_a_burst_only_delays(two_sites: Callable[..., dict[str, SiteProcesses]], outage_s: float) -> None:
    """Site b (its broker and bridge) is down for a while; site a goes on taking tells (queued): all arrive."""
    sites = two_sites()
    a, b = sites["a"], sites["b"]
    connected(sites)
    burst = Burst(a).start()
    burst.half.wait(timeout=scaled(60))
    b.kill9("bridge")
    b.kill9("broker")
    down_until = time.monotonic() + outage_s
    wait_until(lambda: len(burst.acked) == burst.count or time.monotonic() > down_until,
               timeout=outage_s + 60, message="the burst going on while site b is down")
    left = down_until - time.monotonic()
    if left > 0:
        time.sleep(left)  # the outage itself: nothing to poll, site b is simply away this long
    status = a.call("user", "status")
    reviewer = next(x for x in status["agents"] if x["name"] == "reviewer")
    assert reviewer["remote"] and reviewer["reported_at"] < time.time() - outage_s + 2, "a shows b's last report, aged"
    b.start()
    check_exactly_once_with_receipts(a, b, burst)


def test_a_message_too_large_for_nats_tells_its_sender(two_sites: Callable[..., dict[str, SiteProcesses]]) -> None:
    sites = two_sites(extra="limits: {message_bytes: 1048576}\n")
    a = sites["a"]
    connected(sites)
    try:
        a.call("writer", "tell", to="reviewer", text="x" * 1_048_000)
    except BrokerError as exc:
        raise AssertionError(exc) from None

    def told() -> list[dict[str, Any]]:
        return [m for m in a.call("writer", "read_messages")["messages"] if m["kind"] == "notice"]

    notice = wait_until(told, timeout=30, message="the notice that it cannot cross")
    assert "cannot be carried to site b" in notice[0]["text"] and "max_payload" in notice[0]["text"]
