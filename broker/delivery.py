"""How messages reach a model: the agents' hooks and tools, busy/idle, and waking an idle agent.

A hook reports its CLI's event (busy, idle, stopped, or a permission/notification/failure the
attention desk reads) and claims the messages to put into the model's context; a relay opening an
MCP session means the agent's tools are up. An idle agent with something that needs it is woken
(`Waker`, made here when the broker is given a wake policy). Messages no model has seen for long
get their senders a notice. The part knows the rest of the broker only through `DeliveryHost`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from . import wire
from .args import Claim, Facts, Int64, Millis, SessionId
from .members import Member, needs_attention
from .needs import AnswerError, MemberView
from .optable import OpError, op
from .paths import USER
from .ports import Wake, skipped
from .records import AgentState, DecisionAnswer, Hello, HookAnswer, Injected, McpOpened, Message, Route, SiteFields
from .wake import WakePolicy, Waker

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .attention import AttentionDesk
    from .ports import Ports
    from .rules import RuleEngine
    from .store import NewMessage, Store

log = logging.getLogger("podctl.broker")


class DeliveryHost(Protocol):
    """What delivery needs of the broker, and nothing more."""

    spec: PodSpec
    store: Store
    ports: Ports
    members: dict[str, Member]
    tokens: dict[str, str]
    rules: RuleEngine
    attention: AttentionDesk

    def publish(self, frame: dict[str, Any]) -> None: ...
    def over_budget(self, name: str) -> str | None: ...
    def site_of(self, name: str) -> SiteFields: ...
    def route_list(self) -> list[Route]: ...
    def delivered(self, agent: str, ids: list[int], state: str, ts: float) -> None: ...
    async def mark_answered(self, agent: str, messages: list[Message]) -> None: ...
    async def system_message(self, recipients: list[str], text: str) -> NewMessage: ...
    async def left_ask(self, name: str, ask_id: int) -> None: ...


class Delivery:
    def __init__(self, host: DeliveryHost, wake: WakePolicy | None) -> None:
        self.host = host
        self.mcp_sessions: dict[str, int] = {}
        self.waker = Waker(self.nudge, self.wakeable, self.record_wake, wake) if wake is not None else None
        """None: nobody is woken (a broker in a test of something else)."""

    # -- tools --------------------------------------------------------------------------------------

    @op("anyone")
    async def op_hello(self, agent: str, shim: bool = False) -> Hello:
        if shim:
            await self._tools_up(agent)
        limits = self.host.spec.limits
        return {
            "pod": self.host.spec.name, "protocol": wire.PROTOCOL_VERSION, "broker_pid": os.getpid(), "agent": agent,
            "limits": {"message_bytes": limits.message_bytes, "wait_cap_ms": limits.wait_cap_ms},
        }

    @op()
    async def op_mcp(self, agent: str, session: SessionId, wait_cap_ms: Int64 | None = None) -> McpOpened:
        """The relay of the agent's CLI opens its MCP session (server.py switches the connection):
        the agent's tools are up from now on, so it may be woken."""
        if agent == USER:
            raise OpError(wire.FORBIDDEN, "MCP sessions are for agents")
        self.mcp_sessions[agent] = self.mcp_sessions.get(agent, 0) + 1
        await self._tools_up(agent)
        cap = self.host.spec.limits.wait_cap_ms
        return {"mcp": True, "session": session, "wait_cap_ms": min(wait_cap_ms or cap, cap)}

    def mcp_closed(self, agent: str) -> None:
        """An MCP session ended (its CLI exited, or the connection dropped): with none left, the
        agent has no tools to be woken with until its relay connects again."""
        left = self.mcp_sessions.get(agent, 0) - 1
        self.mcp_sessions[agent] = max(0, left)
        member = self.host.members.get(agent)
        if left <= 0 and member is not None:
            self._set_tools(member, False)

    def _set_tools(self, member: Member, ready: bool) -> None:
        if member.tools_ready != ready:
            member.tools_ready = ready
            self.host.publish(wire.event("tools", {"name": member.name, "ready": ready, "ts": time.time()}))

    async def _tools_up(self, agent: str) -> None:
        member = self.host.members.get(agent)
        if member is not None and not member.tools_ready:
            self._set_tools(member, True)
            if member.starting:
                await self.set_state(agent, member.state)  # its CLI is up: no longer starting
            if member.state == "idle" and (member.owed_turn or await self.host.store.pending_wakeworthy(agent)):
                self.maybe_wake(agent)

    # -- hooks --------------------------------------------------------------------------------------

    @op()
    async def op_hook(
        self, agent: str, event: str, *, inject: bool = True, attention_only: bool = False, shows: bool = True,
        intro: bool = False, facts: Facts | None = None, hold_ms: Int64 = 0,
    ) -> HookAnswer:
        if event not in wire.HOOK_EVENTS:
            raise OpError(wire.BAD_REQUEST, f"event must be one of {', '.join(wire.HOOK_EVENTS)}")
        if agent == USER:
            raise OpError(wire.FORBIDDEN, "hooks are for agents")
        host = self.host
        base = (None if event in wire.ATTENTION_EVENTS else
                "busy" if event in wire.BUSY_EVENTS else "idle" if event in wire.IDLE_EVENTS else "stopped")
        member = host.members[agent]
        member.last_activity = time.time()
        state, request = await host.attention.on_hook(agent, event, base, facts or {}, min(max(0, hold_ms), 3_600_000))
        await self.set_state(agent, state)
        if state != "idle":
            member.owed_turn = False
        if event == "turn_start" and self.waker is not None:
            self.waker.turn_started(agent)
        if event == "turn_end":
            host.rules.on_turn_end(agent)
        claim: str | None = None
        messages: list[Message] = []
        pointers: list[dict[str, Any]] = []
        more = 0
        if inject and state not in ("stopped", "blocked", "failed"):
            claim, messages, pointers, more = await host.store.claim(
                agent, time.time(), wire.CLAIM_LEASE_S, attention_only=bool(attention_only),
                max_bytes=wire.HOOK_BATCH_BYTES, max_count=wire.HOOK_BATCH_COUNT,
            )
            await host.mark_answered(agent, messages)
        result: HookAnswer = {
            "state": state, "claim": claim, "messages": messages, "too_large": pointers, "more": more,
        }
        if request is not None:
            result["request"] = request
        if event == "session_start" or intro:
            await self._session_start(member, result, bool(shows))
            if state != "idle":
                member.owed_turn = False  # shown in the turn that runs now: no turn is owed for them
        if state == "idle":
            pending = await host.store.pending_wakeworthy(agent)
            shown_now = len([m for m in messages if needs_attention(m)]) + len(pointers)
            if (event == "session_start" and (pending or member.owed_turn)) or (
                event == "turn_end" and pending > shown_now
            ):
                self.maybe_wake(agent)
        return result

    async def _session_start(self, member: Member, result: HookAnswer, shows: bool) -> None:
        """A new session of the agent's CLI: its model's context is new. It gets the pod (its role, its
        team) and, besides the messages no model of it has seen, the asks to it that are still open and
        that it has not answered (it was shown them in an earlier session), when its hook shows what it
        is answered. Those need a turn: the agent is woken once for them, not again at every turn end."""
        host = self.host
        result["context"] = {
            "pod": host.spec.name,
            "agent": member.name,
            "role": member.role,
            "members": [
                {"name": m.name, "cli": m.cli, "role": m.role, "state": m.state, **host.site_of(m.name)}
                for m in host.members.values() if not m.removed
            ],
            "routes": host.route_list(),
        }
        if not shows:
            return
        reshown = await self._open_asks_again(member.name, result["messages"])
        result["open_asks"] = reshown
        member.owed_turn = bool(reshown) or bool(result["too_large"]) or any(needs_attention(m) for m in result["messages"])

    async def _open_asks_again(self, agent: str, shown: list[Message]) -> list[Message]:
        """The open asks to `agent` that it was shown before and has not answered, oldest first, within
        what one hook shows beside `shown`; one too large to show has its text left out (`too_large`)."""
        room = wire.HOOK_BATCH_BYTES - sum(len(m["text"].encode("utf-8")) for m in shown)
        out = []
        for message, size in await self.host.store.seen_open_asks(agent, time.time(), wire.HOOK_BATCH_COUNT):
            if size <= room:
                room -= size
                out.append(message)
            else:
                out.append({**message, "text": "", "too_large": size})
        return out

    @op()
    async def op_ack_injected(self, agent: str, claim: Claim) -> Injected:
        now = time.time()
        ids = await self.host.store.ack_claim(agent, claim, now)
        self.host.delivered(agent, ids, "injected", now)
        return {"injected": len(ids)}

    @op()
    async def op_await_decision(
        self, agent: str, request: Int64, timeout_ms: Millis = 0, final: bool = False
    ) -> DecisionAnswer:
        """A permission hook waits for its answer (at most MAX_WAIT_MS a call)."""
        try:
            return await self.host.attention.await_decision(
                agent, request, min(float(timeout_ms), wire.MAX_WAIT_MS), final
            )
        except AnswerError as exc:
            raise OpError(exc.code, exc.message) from None

    # -- states -------------------------------------------------------------------------------------

    async def set_state(self, name: str, state: str, fresh: bool = False) -> None:
        """A hook's state, or (`fresh`) the state of a CLI just (re)started: its clock starts again
        even if the state is the same, and an idle one is `starting` until it shows it is up."""
        member = self.host.members[name]
        if state == "stopped":
            self._set_tools(member, False)
        starting = fresh and state == "idle" and not member.tools_ready
        if member.state == state and not fresh and member.starting == starting:
            return
        now = time.time()
        member.state, member.state_ts, member.starting = state, now, starting
        await self.host.store.set_state(name, state, now)
        self.host.publish(wire.event("state", {"name": name, "state": state, "ts": now, "starting": starting}))
        if member.leaving and state != "busy":
            await self.gone(member)

    async def gone(self, member: Member) -> None:
        """A removed agent is out of the pod: no identity, nothing to wake, and no open ask waits for
        it any more (the asker is told; an ask its other members answered is complete)."""
        member.leaving = False
        member.state = "stopped"
        self.host.tokens.pop(member.name, None)
        for ask_id in await self.host.store.drop_from_asks(member.name, time.time()):
            await self.host.left_ask(member.name, ask_id)

    def member_view(self, name: str) -> MemberView | None:
        member = self.host.members.get(name)
        if member is None or member.removed:
            return None
        return MemberView(member.cli, member.state, member.state_ts, member.last_activity, member.tools_ready)

    async def show_state(self, name: str, state: AgentState) -> None:
        """The attention desk's view of an agent changed: show it, and wake it if it is idle and messages wait."""
        if name not in self.host.members:
            return
        await self.set_state(name, state)
        if state == "idle" and await self.host.store.pending_wakeworthy(name):
            self.maybe_wake(name)

    # -- waking ---------------------------------------------------------------------------------------

    def wakeable(self, name: str) -> bool:
        """Idle, its tools are up, and within budget: a nudge now starts a turn that can answer."""
        member = self.host.members.get(name)
        return (member is not None and member.state == "idle" and member.tools_ready and not member.removed
                and not member.remote and self.host.over_budget(name) is None)

    def maybe_wake(self, name: str) -> None:
        if self.waker is not None and self.wakeable(name):
            self.waker.request(name)

    def waking(self, name: str) -> bool:
        return bool(self.waker and self.waker.pending(name))

    async def nudge(self, agent: str) -> Wake:
        """The wake the Waker calls: the port types the agent's CLI's wake text into its pane."""
        member = self.host.members.get(agent)
        if member is None:
            return skipped("no such agent")
        return await self.host.ports.nudge(self.host.spec.name, agent, member.cli)

    async def record_wake(self, name: str, wake: Wake) -> None:
        now = time.time()
        result = str(wake)
        member = self.host.members.get(name)
        if member is not None:
            member.last_wake, member.last_wake_ts = result, now
        await self.host.store.record_wake(name, now, result)
        self.host.publish(wire.event("wake", {"name": name, "result": result, "ts": now}))

    # -- messages no model has seen -------------------------------------------------------------------

    async def send_overdue_notices(self) -> int:
        """Tell senders about messages no model has seen after `limits.undelivered_notice_s`."""
        host = self.host
        limit_s = host.spec.limits.undelivered_notice_s
        overdue = await host.store.overdue(time.time() - limit_s)
        if not overdue:
            return 0
        await host.store.mark_noticed([(mid, rcpt) for mid, rcpt, _, _ in overdue], time.time())
        by_sender: dict[str, list[str]] = {}
        for mid, rcpt, sender, kind in overdue:
            if sender == wire.SYSTEM_SENDER or rcpt == USER:
                continue
            state = host.members[rcpt].state if rcpt in host.members else "removed"
            by_sender.setdefault(sender, []).append(f"your {kind} #{mid} to {rcpt} ({rcpt} is {state})")
        minutes = round(limit_s / 60, 1)
        for sender, lines in by_sender.items():
            if sender != USER and (sender not in host.members or host.members[sender].removed):
                continue
            await host.system_message(
                [sender], f"Not delivered after {minutes} min: no model has seen " + "; ".join(lines) + "."
            )
        return len(overdue)

    async def notices_loop(self) -> None:
        while True:
            interval = min(30.0, max(0.2, self.host.spec.limits.undelivered_notice_s / 4))
            await asyncio.sleep(interval)
            try:
                await self.send_overdue_notices()
            except Exception:
                log.exception("non-delivery notices failed")

    async def close(self) -> None:
        if self.waker is not None:
            await self.waker.close()
