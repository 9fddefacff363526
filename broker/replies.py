"""Waiting for the answers to an ask: wait_for_reply, check_replies, an ask's deadline, a member leaving.

An ask is answered when its targets replied (all of them, or the first for a `first` route); a route's
ask has a deadline after which its asker is told what arrived and who did not answer. The part knows
the rest of the broker only through `RepliesHost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from . import wire
from .args import AskId, Millis
from .optable import OpError, op
from .paths import USER
from .records import AskState, AskStatus, Reply
from .store import NewMessage

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .members import Member
    from .rules import RuleEngine
    from .store import Store

log = logging.getLogger("podctl.broker")

WAITER_GRACE_TICKS = 100
"""At an ask's deadline, how many 50 ms ticks a wait_for_reply in progress gets to return "expired" to
the asker itself (then no notice is needed)."""


class RepliesHost(Protocol):
    """What the replies part needs of the broker, and nothing more."""

    spec: PodSpec
    store: Store
    members: dict[str, Member]
    rules: RuleEngine

    async def commit(self, msg: NewMessage) -> NewMessage: ...
    async def system_message(self, recipients: list[str], text: str) -> NewMessage: ...
    async def mark_read(self, agent: str, ids: list[int]) -> None: ...


class Replies:
    def __init__(self, host: RepliesHost) -> None:
        self.host = host
        self._reply_events: dict[int, asyncio.Event] = {}
        self._expiries: dict[int, asyncio.Task[None]] = {}
        self._waiting: dict[int, int] = {}
        """wait_for_reply calls in progress, by ask_id."""

    def arrived(self, ask_id: int) -> None:
        """A reply to `ask_id` was stored: a wait_for_reply on it looks again."""
        event = self._reply_events.pop(ask_id, None)
        if event is not None:
            event.set()

    async def _ask_for(self, agent: str, ask_id: Any) -> dict[str, Any]:
        if isinstance(ask_id, str) and ask_id.isdigit():
            ask_id = int(ask_id)
        if not isinstance(ask_id, int) or isinstance(ask_id, bool):
            raise OpError(wire.BAD_REQUEST, f"ask_id must be the number ask() returned, not {ask_id!r}")
        ask = await self.host.store.ask(ask_id)
        if ask is None:
            raise OpError(wire.UNKNOWN_ASK, f"no ask with ask_id {ask_id} in pod {self.host.spec.name}")
        if agent not in (ask["asker"], USER):
            raise OpError(wire.FORBIDDEN, f"ask {ask_id} was sent by {ask['asker']}; only they can wait for its replies")
        return ask

    async def ask_status(self, ask: dict[str, Any]) -> AskStatus:
        targets: dict[str, int | None] = ask["targets"]
        reply_ids = [rid for rid in targets.values() if rid]
        replies: list[Reply] = [
            {"from": m["from"], "text": m["text"], "message_id": m["id"], "ts": m["ts"]}
            for m in await self.host.store.messages_by_id(reply_ids)
        ]
        waiting_on = sorted(a for a, rid in targets.items() if not rid)
        done = (bool(replies) if ask["mode"] == "first" else not waiting_on) or not targets
        status: AskState
        if done:
            status = "replied"
        elif ask["deadline"] is not None and time.time() >= ask["deadline"]:
            status = "expired"
        else:
            status = "waiting"
        out: AskStatus = {
            "ask_id": ask["id"], "status": status, "mode": ask["mode"], "replies": replies, "waiting_on": waiting_on,
        }
        if ask["route"]:
            out["route"] = ask["route"]
        return out

    @op()
    async def op_wait_for_reply(self, agent: str, ask_id: AskId, timeout_ms: Millis = 30_000) -> AskStatus:
        ask = await self._ask_for(agent, ask_id)
        self._waiting[ask["id"]] = self._waiting.get(ask["id"], 0) + 1
        try:
            return await self._wait_for_reply(agent, ask, min(float(timeout_ms), wire.MAX_WAIT_MS) / 1000.0)
        finally:
            left = self._waiting.pop(ask["id"], 1) - 1
            if left:
                self._waiting[ask["id"]] = left

    async def _wait_for_reply(self, agent: str, ask: dict[str, Any], wait_s: float) -> AskStatus:
        deadline = time.monotonic() + wait_s
        while True:
            event = self._reply_events.setdefault(ask["id"], asyncio.Event())
            result = await self.ask_status(await self.host.store.ask(ask["id"]) or ask)
            if result["status"] in ("replied", "expired"):
                return await self._returned(agent, result)
            remaining = deadline - time.monotonic()
            if ask["deadline"] is not None:
                remaining = min(remaining, ask["deadline"] - time.time())
            if remaining <= 0:
                if ask["deadline"] is not None and time.time() >= ask["deadline"]:
                    continue
                result["status"] = "timeout"
                return await self._returned(agent, result)
            try:
                await asyncio.wait_for(event.wait(), timeout=remaining)
            except TimeoutError:
                pass

    @op()
    async def op_check_replies(self, agent: str, ask_id: AskId) -> AskStatus:
        ask = await self._ask_for(agent, ask_id)
        result = await self.ask_status(ask)
        if result["status"] not in ("replied", "expired"):
            result["status"] = "waiting"
        result["delivery"] = (await self.host.store.deliveries_of([ask["id"]])).get(ask["id"], [])
        return await self._returned(agent, result)

    async def _returned(self, agent: str, result: AskStatus) -> AskStatus:
        """Replies a tool call hands to the caller are delivered: marked read, so no hook shows them again.
        An asker who is handed "expired" knows it: no expiry notice follows."""
        await self.host.mark_read(agent, [r["message_id"] for r in result["replies"]])
        if result["status"] == "expired":
            await self.host.store.mark_expiry_checked(result["ask_id"], time.time())
        return result

    # -- deadlines ---------------------------------------------------------------------------------

    def expire_at(self, ask_id: int, deadline: float) -> None:
        """At the ask's deadline, tell its asker if answers are missing (a rule's asks are the rule's)."""
        task = asyncio.create_task(self._expire(ask_id, deadline), name=f"expire-{ask_id}")
        self._expiries[ask_id] = task
        task.add_done_callback(lambda _: self._expiries.pop(ask_id, None))

    async def _expire(self, ask_id: int, deadline: float) -> None:
        while (left := deadline - time.time()) > 0:
            await asyncio.sleep(left)
        try:
            await self.tell_expired(ask_id)
        except Exception:
            log.exception("the expiry of ask #%s failed", ask_id)

    async def tell_expired(self, ask_id: int) -> None:
        """The ask's deadline passed: if answers are missing, its asker gets what arrived and who did not
        answer (an urgent notice, so an idle asker is woken; it is in the transcript too), once."""
        for _ in range(WAITER_GRACE_TICKS):  # a wait_for_reply ending now hands "expired" to the asker itself
            if not self._waiting.get(ask_id):
                break
            await asyncio.sleep(0.05)
        host = self.host
        ask = await host.store.ask(ask_id)
        if ask is None or ask["expiry_checked"] is not None:
            return
        status = await self.ask_status(ask)
        if not await host.store.mark_expiry_checked(ask_id, time.time()) or status["status"] != "expired":
            return
        asker = ask["asker"]
        if asker != USER and (asker not in host.members or host.members[asker].removed):
            return
        route = f" (route {ask['route']})" if ask["route"] else ""
        head = f"Your ask #{ask_id}{route} expired: no answer from {', '.join(status['waiting_on'])} before its timeout."
        answers = "\n\n".join(f"[{r['from']}]\n{r['text']}" for r in status["replies"])
        text = head + (f" Answers that arrived:\n\n{answers}" if answers else " Nobody answered.")
        await host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="notice", recipients=[asker], target=asker,
            text=text[: host.spec.limits.message_bytes], urgent=True, ask_id=ask_id,
        ))

    async def left_ask(self, name: str, ask_id: int) -> None:
        """`name` left the pod: ask `ask_id` no longer waits for it; its asker is told what that means."""
        host = self.host
        ask = await host.store.ask(ask_id)
        if ask is None:
            return
        self.arrived(ask_id)
        status = await self.ask_status(ask)
        asker = host.rules.settle_soon(ask_id) if ask["asker"] == wire.SYSTEM_SENDER else ask["asker"]
        if asker is None or (asker != USER and (asker not in host.members or host.members[asker].removed)):
            return
        if status["status"] == "replied":
            then = "it is complete with the answers of the others" if status["replies"] else "nobody else was asked"
        else:
            then = f"it still waits for {', '.join(status['waiting_on'])}"
        await host.system_message(
            [asker], f"{name} was removed from pod {host.spec.name} and will not answer ask #{ask_id}: {then}."
        )

    async def close(self) -> None:
        """Stop the timers of asks' deadlines (they are taken up again from the store at the next start)."""
        tasks = list(self._expiries.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2.0)
