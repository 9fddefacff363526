"""The wake decision on its own (broker/wake.py), with the broker's Nudger port played by the test:
a CLI that shows its prompt late (OpenCode takes up to 15 s on a first start) is still woken. Then
what the broker asks it to wake for: a new session is woken only for what its model has not seen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from podctl.broker.ports import SENT, Ports, Wake, skipped
from podctl.broker.records import HookAnswer
from podctl.broker.wake import WakePolicy, Waker
from podctl.hooks.path.text import injection

from ..helpers import TWO_AGENTS, LocalBroker, wait_until, write_pod

T = TypeVar("T")


def test_a_pane_that_is_not_ready_for_longer_than_three_tries_is_still_woken_and_recorded_once() -> None:
    async def scenario() -> list[tuple[str, str]]:
        recorded: list[tuple[str, str]] = []
        tries = 0
        waker: Waker

        async def nudge(agent: str) -> Wake:
            nonlocal tries
            tries += 1
            if tries <= 6:
                return skipped("the CLI is not ready for input yet (no 'Ask anything' on screen)")
            asyncio.get_running_loop().call_soon(waker.turn_started, agent)
            return SENT

        async def record(agent: str, result: Wake) -> None:
            recorded.append((agent, str(result)))

        waker = Waker(nudge, lambda agent: True, record,
                      WakePolicy(debounce_s=0.0, skipped_retry_s=0.01, skip_budget_s=5.0, confirm_s=5.0))
        waker.request("oc")
        await asyncio.wait_for(waker._tasks["oc"], timeout=10)
        return recorded

    recorded = asyncio.run(scenario())
    assert [r for _, r in recorded] == [
        "skipped: the CLI is not ready for input yet (no 'Ask anything' on screen)", "sent", "woken",
    ], "six skips (twice the attempts) did not give the wake up, and were recorded once"


def test_a_pane_never_ready_within_the_budget_is_given_up_with_the_reason() -> None:
    async def scenario() -> list[str]:
        recorded: list[str] = []

        async def nudge(agent: str) -> Wake:
            return skipped("a person is typing in this session")

        async def record(agent: str, result: Wake) -> None:
            recorded.append(str(result))

        waker = Waker(nudge, lambda agent: True, record, WakePolicy(debounce_s=0.0, skipped_retry_s=0.01, skip_budget_s=0.2))
        waker.request("oc")
        await asyncio.wait_for(waker._tasks["oc"], timeout=10)
        return recorded

    assert asyncio.run(scenario()) == [
        "skipped: a person is typing in this session", "failed: the pane was not ready for 0.2 s (a person is typing in this session)",
    ]


# -- what a session start wakes for ---------------------------------------------------------------


class Nudges:
    """The broker's Nudger port, played by the test: every nudge is recorded."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __call__(self, pod: str, agent: str, cli: str) -> Wake:
        self.sent.append(agent)
        return SENT


@pytest.fixture
def nudges() -> Nudges:
    return Nudges()


@pytest.fixture
def waking_broker(tmp_path: Path, podctl_home: Path, nudges: Nudges) -> Iterator[LocalBroker]:
    """The `local_broker` fixture's pod, with a waker whose nudges `nudges` records."""
    handle = LocalBroker(write_pod(tmp_path / "bus", TWO_AGENTS.format(name="bus")), ports=Ports(nudge=nudges),
                         wake=WakePolicy(debounce_s=0.0))
    yield handle
    handle.close()


def after_a_tick(local: LocalBroker, check: Callable[[], T]) -> Callable[[], T]:
    """A `wait_until` predicate that lets the broker's tasks (the wake) run first."""
    def run() -> T:
        local.run(asyncio.sleep(0.01))
        return check()
    return run


def session(local: LocalBroker, agent: str, tools_first: bool) -> dict[str, Any]:
    """A new session of the agent's CLI: its session_start hook and its MCP server, in either order."""
    if tools_first:
        local.call(agent, "hello", shim=True)
        return local.call(agent, "hook", event="session_start")
    started = local.call(agent, "hook", event="session_start")
    local.call(agent, "hello", shim=True)
    return started


def turn(local: LocalBroker, agent: str) -> dict[str, Any]:
    """One model turn: its start injects what is new (claimed, printed, acknowledged), then it ends."""
    shown = local.call(agent, "hook", event="turn_start")
    if shown["claim"]:
        local.call(agent, "ack_injected", claim=shown["claim"])
    local.call(agent, "hook", event="turn_end")
    return shown


def end_session(local: LocalBroker, agent: str) -> None:
    local.call(agent, "hook", event="session_end")


def test_a_new_session_is_not_woken_for_messages_an_earlier_session_was_shown(
    waking_broker: LocalBroker, nudges: Nudges
) -> None:
    local_broker = waking_broker
    """A Claude agent's tells stay `injected` forever: a restart used to wake it with an empty nudge."""
    session(local_broker, "alice", tools_first=True)
    asked = local_broker.call("alice", "ask", to="bob", text="which port?")["ask_id"]
    local_broker.call("bob", "tell", to="alice", text="deploy now", urgent=True)
    local_broker.call("bob", "post_reply", ask_id=asked, text="8080")
    wait_until(after_a_tick(local_broker, lambda: nudges.sent == ["alice"]), timeout=5, message="alice woken for what is new")
    shown = turn(local_broker, "alice")
    assert [m["text"] for m in shown["messages"]] == ["deploy now", "8080"]
    wait_until(after_a_tick(local_broker, lambda: not local_broker.broker.delivery.waking("alice")), timeout=5,
               message="the wake answered")
    for tools_first in (True, False):
        end_session(local_broker, "alice")
        started = session(local_broker, "alice", tools_first=tools_first)
        assert started["messages"] == [] and not started.get("open_asks")
        assert not local_broker.broker.delivery.waking("alice"), "no wake: nothing is new to the model"
    assert nudges.sent == ["alice"]


def test_a_new_session_is_shown_the_asks_it_never_answered_and_woken_once_for_them(
    waking_broker: LocalBroker, nudges: Nudges
) -> None:
    local_broker = waking_broker
    session(local_broker, "alice", tools_first=True)
    open_id = local_broker.call("bob", "ask", to="alice", text="is the API frozen?")["ask_id"]
    done_id = local_broker.call("carol", "ask", to="alice", text="lunch?")["ask_id"]
    wait_until(after_a_tick(local_broker, lambda: nudges.sent == ["alice"]), timeout=5, message="alice woken for the asks")
    assert [m["ask_id"] for m in turn(local_broker, "alice")["messages"]] == [open_id, done_id]
    local_broker.call("alice", "post_reply", ask_id=done_id, text="yes")
    wait_until(after_a_tick(local_broker, lambda: not local_broker.broker.delivery.waking("alice")), timeout=5,
               message="the wake answered")
    end_session(local_broker, "alice")

    started = session(local_broker, "alice", tools_first=False)
    assert [(a["ask_id"], a["from"]) for a in started["open_asks"]] == [(open_id, "bob")], "not the answered one"
    text = injection(cast("HookAnswer", started)) or ""
    assert f"ask #{open_id} from bob; answer it with post_reply(ask_id={open_id}" in text and "is the API frozen?" in text
    assert "lunch?" not in text
    assert local_broker.broker.delivery.waking("alice"), "woken for the ask it was shown again"
    wait_until(after_a_tick(local_broker, lambda: nudges.sent == ["alice", "alice"]), timeout=5,
               message="one nudge for the ask shown again")
    turn(local_broker, "alice")
    wait_until(after_a_tick(local_broker, lambda: not local_broker.broker.delivery.waking("alice")), timeout=5,
               message="the wake answered")
    local_broker.call("alice", "hook", event="turn_end")
    local_broker.call("alice", "hello", shim=True)
    assert not local_broker.broker.delivery.waking("alice"), "no wake storm: the new session saw the ask"
    assert nudges.sent == ["alice", "alice"]


def test_a_nudge_that_started_a_turn_reads_woken_also_when_stored_by_an_older_podctl(local_broker: LocalBroker) -> None:
    """`answered` read as if the agent had answered; it meant the nudge started a turn: `woken`."""
    from podctl.broker.readonly import ReadOnlyStore

    local_broker.run(local_broker.store.record_wake("alice", 1.0, "answered"))
    local_broker.run(local_broker.broker.delivery.record_wake("bob", Wake("woken")))
    wakes = local_broker.run(local_broker.store.overview())["last_wakes"]
    assert wakes["alice"]["result"] == "woken" and wakes["bob"]["result"] == "woken"
    with ReadOnlyStore(local_broker.paths.db) as store:
        assert store.overview()["last_wakes"]["alice"]["result"] == "woken", "a pod that is down reads the same"
