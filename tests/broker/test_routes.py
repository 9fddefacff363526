"""Review routes: asking a named address with a policy (mode all / first, a timeout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from podctl.broker import wire

from ..helpers import BrokerProcess, write_pod

POD = """\
name: routes
agents:
  writer: {{cli: script}}
  rev-a: {{cli: script}}
  rev-b: {{cli: script}}
routes:
  - name: review
    from: [writer]
    to: [rev-a, rev-b]
    mode: {mode}
    timeout: {timeout}
"""


def start(start_broker: Callable[..., BrokerProcess], tmp_path: Path, mode: str, timeout: str = "10m") -> BrokerProcess:
    return start_broker(write_pod(tmp_path / "routes", POD.format(mode=mode, timeout=timeout)))


def test_mode_all_gathers_every_answer(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "all")
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
        listed = w.call("list_agents")
        assert listed["routes"][0]["name"] == "review" and listed["routes"][0]["to"] == ["rev-a", "rev-b"]
        asked = w.call("ask", to="review", text="review the diff")
        assert asked["mode"] == "all" and [r["name"] for r in asked["recipients"]] == ["rev-a", "rev-b"]
        a.call("post_reply", ask_id=asked["ask_id"], text="a: fine")
        assert w.call("check_replies", ask_id=asked["ask_id"])["waiting_on"] == ["rev-b"]
        b.call("post_reply", ask_id=asked["ask_id"], text="b: one nit")
        done = w.call("wait_for_reply", ask_id=asked["ask_id"], timeout_ms=5000)
        assert done["status"] == "replied" and done["route"] == "review"
        assert sorted((r["from"], r["text"]) for r in done["replies"]) == [("rev-a", "a: fine"), ("rev-b", "b: one nit")]


def test_mode_first_takes_the_first_answer(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "first")
    with broker.client("writer") as w, broker.client("rev-b") as b:
        asked = w.call("ask", to="review", text="anyone?")
        b.call("post_reply", ask_id=asked["ask_id"], text="b was first")
        done = w.call("wait_for_reply", ask_id=asked["ask_id"], timeout_ms=5000)
        assert done["status"] == "replied" and [r["from"] for r in done["replies"]] == ["rev-b"]
        assert done["waiting_on"] == ["rev-a"]


def test_route_timeout_returns_answers_so_far_and_who_is_missing(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "all", timeout="1s")
    with broker.client("writer") as w, broker.client("rev-a") as a:
        asked = w.call("ask", to="review", text="quick one")
        a.call("post_reply", ask_id=asked["ask_id"], text="a answered")
        done = w.call("wait_for_reply", ask_id=asked["ask_id"], timeout_ms=20_000)
        assert done["status"] == "expired"
        assert [r["from"] for r in done["replies"]] == ["rev-a"] and done["waiting_on"] == ["rev-b"]


def test_route_is_only_for_its_senders(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start(start_broker, tmp_path, "all")
    with broker.client("rev-a") as a:
        with pytest.raises(wire.BrokerError) as err:
            a.call("ask", to="review", text="can I?")
        assert err.value.code == wire.FORBIDDEN and "writer" in err.value.message
