"""Keeps the live view's PodView in step with the pod, from the broker's event stream (the one
`podctl tail -f` reads): a snapshot on connect, then events as they come. No polling of the
store: what an event does not carry (unread counts, open asks, rules) is asked for again after
the events that change it, at most every REFETCH_S. While the broker is down the view shows the
store read-only and tries to reconnect every RETRY_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from podctl.broker import wire
from podctl.broker.client import AsyncClient
from podctl.broker.paths import USER, PodPaths
from podctl.pods.errors import PodctlError

from .model import Changes, Connection, PodView

HISTORY_LOAD = 500
"""Messages read on (re)connect; older ones stay in `podctl tail`."""
REFETCH_S = 0.2
RETRY_S = 0.5
CALL_TIMEOUT_S = 5.0
RECONNECTED_NOTE_S = 3.0
""""reconnected: the broker is back" is said this long, then the line is clear again."""
RECONNECTED = "reconnected: the broker is back"


class Feed:
    def __init__(self, paths: PodPaths, view: PodView, changed: Callable[[Changes], None]) -> None:
        self.paths = paths
        self.view = view
        self.changed = changed
        try:
            token = paths.read_token(USER)
        except FileNotFoundError:
            raise PodctlError(f"pod {paths.pod!r} has no owner token yet: bring it up with `podctl up`") from None
        self.client = AsyncClient(paths.socket, USER, token)
        self._pending: set[str] = set()
        self._refetch: asyncio.Task[None] | None = None
        self._clear_later: asyncio.TimerHandle | None = None
        self.connected_once = False

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the pod until cancelled: live while the broker runs, the store while it is down."""
        while True:
            try:
                await self._live()
            except wire.BrokerUnavailable:
                pass
            except wire.BrokerError as exc:
                self._say("down", f"the broker refused the live view: {exc}")
            if self.connected_once and self._supervised():
                self._say("reconnecting", "the broker went away; reconnecting (its history stays below)")
            else:
                self._read_store()
            await self._wait_for_broker()

    async def _live(self) -> None:
        await self.client.call_once("hello", CALL_TIMEOUT_S)
        status = await self.call("status")
        changes = self.view.set_status(status)
        since = max(0, int(status.get("last_message_id") or 0) - HISTORY_LOAD)
        history = await self.call("history", since=since, limit=HISTORY_LOAD)
        changes.merge(self.view.set_history(history["messages"]))
        changes.merge(await self._asks_and_rules())
        was = self.connected_once
        self.connected_once = True
        self._say("live", RECONNECTED if was else "")
        if was:
            self._clear_later = asyncio.get_running_loop().call_later(RECONNECTED_NOTE_S, self._clear_note, RECONNECTED)
        self.changed(changes)
        cursor = max(self.view.messages, default=since)
        async for frame in self.client.events(since=cursor):
            update = self.view.apply(frame)
            if update.refetch:
                self._want(update.refetch)
            if update:
                self.changed(update)

    async def _wait_for_broker(self) -> None:
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                await self.client.call_once("hello", CALL_TIMEOUT_S)
                return
            except (wire.BrokerUnavailable, wire.BrokerError):
                if self.view.connection == "reconnecting" and not self._supervised():
                    self._read_store()  # `podctl down` (or a supervisor gone): nothing runs now
                continue

    def _supervised(self) -> bool:
        """Whether the pod's supervisor runs: a broker gone meanwhile is being restarted, not down."""
        from podctl.orchestrator.processes import supervisor_pid

        return supervisor_pid(self.paths) is not None

    def _clear_note(self, note: str) -> None:
        if self.view.note == note:
            self._say(self.view.connection, "")

    # -- what events do not carry ------------------------------------------------------------------

    def _want(self, what: set[str]) -> None:
        self._pending |= what
        if self._refetch is None or self._refetch.done():
            self._refetch = asyncio.create_task(self._refetch_soon())

    async def _refetch_soon(self) -> None:
        await asyncio.sleep(REFETCH_S)
        what, self._pending = self._pending, set()
        changes = Changes()
        with contextlib.suppress(wire.BrokerUnavailable, wire.BrokerError):
            if "status" in what:
                changes.merge(self.view.set_status(await self.call("status")))
            if "asks" in what:
                asks = await self.call("asks")
                changes.merge(self.view.set_asks(asks["asks"]))
            if "rules" in what:
                changes.merge(self.view.set_rules((await self.call("rules"))["rules"]))
        if changes:
            self.changed(changes)

    async def _asks_and_rules(self) -> Changes:
        changes = self.view.set_asks((await self.call("asks"))["asks"])
        changes.merge(self.view.set_rules((await self.call("rules"))["rules"]))
        return changes

    # -- the pod is down ---------------------------------------------------------------------------------

    def _read_store(self) -> None:
        """The pod's history from its store, read-only (a few milliseconds: bounded by HISTORY_LOAD)."""
        from podctl.broker.queries import agents_of_a_pod_down
        from podctl.broker.readonly import ReadOnlyStore

        with ReadOnlyStore(self.paths.db) as store:
            overview = store.overview()
            since = max(0, int(overview["last_message_id"] or 0) - HISTORY_LOAD)
            messages = store.history(since, HISTORY_LOAD).messages
            asks = store.open_asks(time.time(), 50)
        changes = self.view.set_status({"agents": agents_of_a_pod_down(overview)})
        changes.merge(self.view.set_history(messages))
        changes.merge(self.view.set_asks(asks))
        self._say("down", f"pod {self.paths.pod} is down: its history, read-only from {self.paths.db}"
                          f" (`podctl resume {self.paths.pod}` starts it; this view follows when it is up)")
        self.changed(changes)

    # -- helpers -----------------------------------------------------------------------------------------

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        return await self.client.call_once(op, CALL_TIMEOUT_S, **args)

    def _say(self, connection: Connection, note: str) -> None:
        self.changed(self.view.set_connection(connection, note))

    async def close(self) -> None:
        if self._refetch is not None:
            self._refetch.cancel()
        if self._clear_later is not None:
            self._clear_later.cancel()
        await self.client.close()
