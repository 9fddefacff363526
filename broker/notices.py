"""Notices to a person (`notify:` in the pod file): a command run or the bell, when an agent becomes
blocked or failed or a budget is reached. A few at a time; one that fails or hangs is logged, never fatal."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from .ports import Notice

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .ports import Ports

log = logging.getLogger("podctl.broker.attention")

NOTICE_TASKS = 4
"""At most this many notices run at once; more are skipped (and logged)."""


class NoticesHost(Protocol):
    spec: PodSpec
    ports: Ports


class Notices:
    def __init__(self, host: NoticesHost) -> None:
        self.host = host
        self._running = asyncio.Semaphore(NOTICE_TASKS)
        self._tasks: set[asyncio.Task[Any]] = set()

    def notify(self, on: str, agent: str, detail: str) -> None:
        """Run the pod file's notices for `on` (`agent` "" for the whole pod: `{agent}` says so, the bell
        rings in the pod's `podctl` window)."""
        for spec in self.host.spec.notify:
            if on not in spec.events():
                continue
            values = {"pod": self.host.spec.name, "agent": agent or "the pod", "detail": detail, "on": on}
            argv = tuple(arg.format_map(values) for arg in spec.run or ())
            self._spawn(Notice(on=on, agent=agent, detail=detail, run=argv, bell=spec.bell))

    def notify_over_budget(self, agents: list[str], detail: str) -> None:
        """A budget was reached (once per limit: the budget's notice keys keep it from repeating)."""
        self.notify("over_budget", agents[0] if len(agents) == 1 else "", detail)

    def _spawn(self, notice: Notice) -> None:
        if self._running.locked():
            log.warning("notify: %d notices already running; skipped %s of %s", NOTICE_TASKS, notice.on, notice.agent)
            return
        task = asyncio.create_task(self._run_notice(notice))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_notice(self, notice: Notice) -> None:
        async with self._running:
            try:
                said = await asyncio.wait_for(self.host.ports.notify(self.host.spec.name, notice), timeout=30.0)
            except Exception as exc:  # noqa: BLE001 - a notice that fails is logged, never fatal
                said = f"failed: {exc!r}"
            log.info("notify %s of %s: %s", notice.on, notice.agent, said)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
