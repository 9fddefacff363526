"""The wake decision: when an idle agent must be nudged, at most once per burst, never while busy.

The broker calls `request(agent)` for every message that calls for an idle agent's attention
(an ask, an urgent tell, a reply). One task per agent absorbs the burst: it waits a short
debounce, re-checks that the agent is still idle, nudges it, then waits for the turn the nudge
should have started. A nudge that starts no turn is retried with backoff; after the last try
the failure is recorded (and shown by `status`); so is a nudge that woke the agent (`woken`: its
turn started; the agent has not necessarily answered anything).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .ports import Wake, skipped

log = logging.getLogger("podctl.broker.wake")

Nudge = Callable[[str], Awaitable[Wake]]
"""Nudge an agent's pane: `sent`, or `skipped` with why."""


@dataclass
class WakePolicy:
    debounce_s: float = 0.05
    confirm_s: float = 10.0
    """How long a sent nudge has to start a turn before it is tried again (doubles each try)."""
    skipped_retry_s: float = 1.0
    """Wait before trying again when the pane was not ready (a person typing, busy rendering, a CLI
    still starting)."""
    skip_budget_s: float = 90.0
    """How long a pane that is not ready is waited for before the wake is given up. Skips do not
    use up the attempts: a CLI that takes 15 s to show its prompt is still woken."""
    attempts: int = 3


class Waker:
    def __init__(
        self,
        nudge: Nudge,
        is_idle: Callable[[str], bool],
        record: Callable[[str, Wake], Awaitable[None]],
        policy: WakePolicy | None = None,
    ) -> None:
        self._nudge = nudge
        self._is_idle = is_idle
        self._record = record
        self.policy = policy or WakePolicy()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._turn_started: dict[str, asyncio.Event] = {}

    def request(self, agent: str) -> None:
        """Ask for `agent` to be woken; a burst of requests gives one nudge."""
        task = self._tasks.get(agent)
        if task is not None and not task.done():
            return
        self._turn_started[agent] = asyncio.Event()
        self._tasks[agent] = asyncio.create_task(self._wake(agent), name=f"wake-{agent}")

    def turn_started(self, agent: str) -> None:
        event = self._turn_started.get(agent)
        if event is not None:
            event.set()

    def pending(self, agent: str) -> bool:
        task = self._tasks.get(agent)
        return task is not None and not task.done()

    async def _wake(self, agent: str) -> None:
        policy = self.policy
        started = self._turn_started[agent]
        try:
            await asyncio.sleep(policy.debounce_s)
            confirm = policy.confirm_s
            skip_until = asyncio.get_running_loop().time() + policy.skip_budget_s
            attempt, last_skip = 0, None
            while attempt < policy.attempts:
                if not self._is_idle(agent):
                    return
                try:
                    result = await asyncio.wait_for(self._nudge(agent), timeout=10.0)
                except Exception as exc:  # noqa: BLE001 - a failed nudge is recorded, never fatal
                    result = skipped(f"nudge failed: {exc}")
                if result != last_skip:  # a pane that stays unready is recorded once, not every second
                    await self._record(agent, result)
                if result.outcome == "skipped":
                    last_skip = result
                    if asyncio.get_running_loop().time() >= skip_until:
                        break
                    await asyncio.sleep(policy.skipped_retry_s)
                    continue
                attempt, last_skip = attempt + 1, None
                try:
                    await asyncio.wait_for(started.wait(), timeout=confirm)
                    await self._record(agent, Wake("woken"))
                    return
                except TimeoutError:
                    confirm *= 2
            if self._is_idle(agent):
                why = (f"no turn started after {attempt} nudges" if attempt or last_skip is None else
                       f"the pane was not ready for {policy.skip_budget_s:g} s ({last_skip.why})")
                await self._record(agent, Wake("failed", why))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wake of %s failed", agent)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            try:
                await asyncio.wait_for(task, timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
