"""The wake decision on its own (broker/wake.py), with the broker's Nudger port played by the test:
a CLI that shows its prompt late (OpenCode takes up to 15 s on a first start) is still woken."""

from __future__ import annotations

import asyncio

from podctl.broker.wake import WakePolicy, Waker


def test_a_pane_that_is_not_ready_for_longer_than_three_tries_is_still_woken_and_recorded_once() -> None:
    async def scenario() -> list[tuple[str, str]]:
        recorded: list[tuple[str, str]] = []
        tries = 0
        waker: Waker

        async def nudge(agent: str) -> str:
            nonlocal tries
            tries += 1
            if tries <= 6:
                return "skipped: the CLI is not ready for input yet (no 'Ask anything' on screen)"
            asyncio.get_running_loop().call_soon(waker.turn_started, agent)
            return "sent"

        async def record(agent: str, result: str) -> None:
            recorded.append((agent, result))

        waker = Waker(nudge, lambda agent: True, record,
                      WakePolicy(debounce_s=0.0, skipped_retry_s=0.01, skip_budget_s=5.0, confirm_s=5.0))
        waker.request("oc")
        await asyncio.wait_for(waker._tasks["oc"], timeout=10)
        return recorded

    recorded = asyncio.run(scenario())
    assert [r for _, r in recorded] == [
        "skipped: the CLI is not ready for input yet (no 'Ask anything' on screen)", "sent", "answered",
    ], "six skips (twice the attempts) did not give the wake up, and were recorded once"


def test_a_pane_never_ready_within_the_budget_is_given_up_with_the_reason() -> None:
    async def scenario() -> list[str]:
        recorded: list[str] = []

        async def nudge(agent: str) -> str:
            return "skipped: a person is typing in this session"

        async def record(agent: str, result: str) -> None:
            recorded.append(result)

        waker = Waker(nudge, lambda agent: True, record, WakePolicy(debounce_s=0.0, skipped_retry_s=0.01, skip_budget_s=0.2))
        waker.request("oc")
        await asyncio.wait_for(waker._tasks["oc"], timeout=10)
        return recorded

    assert asyncio.run(scenario()) == [
        "skipped: a person is typing in this session", "failed: the pane was not ready for 0.2 s (a person is typing in this session)",
    ]
