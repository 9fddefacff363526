"""Attention: an agent that waits for a person (`blocked`) or cannot work (`failed`), and the answers.

Where it comes from: the CLIs' own hook events (a permission request, a notification, a turn that
ended with an error; `wire.ATTENTION_EVENTS`, with the event's facts), and, where a CLI has no event
for a case (a login screen, a trust dialog, an API error it retries), its screen, read through the
`ScreenReader` port by its adapter's signs. Screens are read only when an event cannot tell: an agent
busy and silent, one whose CLI has no tools up yet, one whose turn just ended, and one blocked or
failed by its screen (to see it clear). What clears it: an answer (`approve`/`deny`, an approver, an
`always`), the tool running, a new turn, the turn's end, the CLI starting again.

An agent's state (`Member.state`) is the state a person sees: `blocked` or `failed` over the
busy/idle/stopped its hooks report (kept here as `base`, to go back to). A blocked or failed agent
is never woken (a typed nudge would answer its dialog): it is not `idle`.

A permission request is answerable while the CLI's hook waits for the answer (`await_decision`, up to
`limits.permission_hold_s`); then the CLI's own dialog takes it, and the person answers in the pane.
Whichever of the pane and podctl answers first wins: an answer that comes later is told so.

Approvals (`approvals:` in the pod file) send the request to an approver as an ask from podctl; its
reply's first word decides (`allow`, `always`, `deny`; anything else denies, with the reply as the
reason). Notices (`notify:`) tell a person once per episode, never again until it cleared.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from podctl.pods.durations import seconds

from . import wire
from .needs import (
    ANSWERED_KEPT_S,
    EPISODE_GAP_S,
    QUESTION_TOOLS,
    AnswerError,
    MemberView,
    Need,
    Request,
    describe,
    first_word_decision,
    from_failure,
    from_notification,
    summary,
    text_of,
)
from .notices import Notices
from .paths import USER
from .ports import Ports
from .screens import ScreenWatch
from .store import NewMessage, Store

if TYPE_CHECKING:
    from podctl.pods.spec import ApprovalSpec, PodSpec, RouteSpec

    from .records import AgentState, Answered, AttentionKind, Decision, DecisionAnswer, Permission

log = logging.getLogger("podctl.broker.attention")

class AttentionHost(Protocol):
    """What the attention desk needs of the broker, and nothing more."""

    spec: PodSpec
    routes: dict[str, RouteSpec]
    store: Store
    ports: Ports

    def active(self) -> list[str]: ...
    def member_view(self, name: str) -> MemberView | None: ...
    async def show_state(self, name: str, state: AgentState) -> None: ...
    def publish(self, frame: dict[str, Any]) -> None: ...
    async def log(self, text: str, level: str = "info", origin: str | None = None) -> int | None: ...
    async def commit(self, msg: NewMessage) -> NewMessage: ...



class AttentionDesk:
    def __init__(self, host: AttentionHost) -> None:
        self.host = host
        self.needs: dict[str, Need] = {}
        self.base: dict[str, str] = {}
        self.requests: dict[int, Request] = {}
        self.last: dict[str, Request] = {}
        self.always: dict[tuple[str, str, str], str] = {}
        self.cleared: dict[str, tuple[tuple[str, str, str, str], float, bool]] = {}
        self._ids = itertools.count(int(time.time() * 1000) % 10**12)
        self.notices = Notices(host)
        self.screens = ScreenWatch(self)

    # -- setup --------------------------------------------------------------------------------

    async def load(self) -> None:
        """What the store kept: needs of agents still in the pod, and `always` answers."""
        self.always = await self.host.store.always_allowed()
        for name, data in (await self.host.store.attention()).items():
            found = Need.from_stored(data)
            if found is not None and name in self.host.active():
                self.needs[name], self.base[name] = found

    def state_of(self, name: str, base: str) -> str:
        need = self.needs.get(name)
        return need.state if need is not None else base

    def status_fields(self, name: str) -> dict[str, Any]:
        need = self.needs.get(name)
        return {need.state: need.as_json()} if need is not None else {}

    # -- hook events ------------------------------------------------------------------------------

    async def on_hook(
        self, agent: str, event: str, base: str | None, facts: dict[str, Any], hold_ms: int
    ) -> tuple[str, Permission | None]:
        """The agent's state after a hook event (its base state `base`, None for the attention
        events), and for a permission request what its hook waits on."""
        now = time.time()
        if base is not None:
            self.base[agent] = base
            if event != "tool_done" or self._ran(agent, facts):
                await self.clear(agent, settle="answered in its pane" if event == "tool_done" else "its turn moved on")
            return self.state_of(agent, base), None
        current = self.base.get(agent, "busy")
        if event == "permission":
            request = await self._permission(agent, facts, hold_ms, now)
            return self.state_of(agent, current), request
        if event == "failure":
            failure = from_failure(facts, now)
            if failure is not None:
                await self.settle_all(agent, "its turn ended with an error")
                await self.enter(agent, failure)
        elif event == "notification":
            meaning = from_notification(facts, now)
            if meaning is False:
                self.base[agent] = "idle"
                if agent in self.needs and self.needs[agent].state == "blocked":
                    await self.clear(agent, settle="its CLI waits at its prompt")
                return self.state_of(agent, "idle"), None
            if isinstance(meaning, Need) and agent not in self.needs:
                await self.enter(agent, meaning)
        return self.state_of(agent, current), None

    def _ran(self, agent: str, facts: dict[str, Any]) -> bool:
        """A tool finished: is it the one a request waits for? (Without facts: assume so.) Another
        tool the model ran beside it (Claude Code runs some in parallel) leaves the request open."""
        pending = self.pending(agent)
        if pending is None or not facts.get("tool_name"):
            return True
        return (str(facts.get("tool_name")) == pending.tool
                and describe(pending.tool, facts.get("tool_input")) == pending.detail)

    async def _permission(self, agent: str, facts: dict[str, Any], hold_ms: int, now: float) -> Permission:
        tool = text_of(facts.get("tool_name"), 200) or "a tool"
        detail = describe(tool, facts.get("tool_input"))
        kind: AttentionKind = "question" if tool in QUESTION_TOOLS else "permission"
        rid = next(self._ids)
        by = self.always.get((agent, tool, detail))
        if by is not None and kind == "permission":
            await self.host.log(f"{agent}: {summary(tool, detail)}: allowed (always, as {by} answered before)",
                                origin="attention")
            return {"id": rid, "decision": "allow", "message": ""}
        request = Request(rid, agent, kind, tool, detail, now, holding=hold_ms > 0,
                          answer=asyncio.get_running_loop().create_future())
        self.requests[rid] = request
        if self.pending(agent) is not request:
            return {"id": rid, "decision": None}  # an earlier one is shown; this one is answered after it
        approval = self.host.spec.approval_for(agent) if kind == "permission" else None
        awaiting = approval.to if approval is not None and approval.to != USER else None
        how = "" if request.holding else "answer in its pane"
        if kind == "question":
            how = "a question for the person: answer in its pane, or deny to let the model decide itself"
        await self.enter(agent, Need("blocked", now, kind, tool=tool, detail=detail, request=rid,
                                     answerable=request.holding, how=how, awaiting=awaiting))
        if approval is not None and awaiting is not None:
            await self._ask_approver(request, approval)
        return {"id": rid, "decision": None}

    def pending(self, agent: str) -> Request | None:
        """The agent's oldest request that nobody answered yet."""
        return next((r for r in self.requests.values() if r.agent == agent and not r.answer.done()), None)

    # -- entering and clearing ------------------------------------------------------------------------

    async def enter(self, agent: str, need: Need) -> None:
        """The agent is blocked or failed; a new episode is said in the transcript and notified."""
        old = self.needs.get(agent)
        last_key, last_ts, last_notified = self.cleared.get(agent, (("",) * 4, 0.0, False))
        if old is not None and old.same_episode(need):
            need.episode, need.notified = old.episode, old.notified
        elif need.key() == last_key and need.since - last_ts < EPISODE_GAP_S:
            need.episode, need.notified = last_ts, last_notified
        else:
            need.episode = need.since
        # stored before anyone can see it (a status call while the write is under way): a blocked agent
        # seen blocked is still blocked, and why, after a kill -9 of the broker
        await self.host.store.save_attention(agent, need.stored(self.base.get(agent, "busy")))
        self.needs[agent] = need
        await self._changed(agent)
        if need.episode == need.since and (old is None or not old.same_episode(need)):
            await self.host.log(self._said(agent, need), "warning", origin="attention")
        if not need.notified and not need.awaiting:
            need.notified = True
            self.notices.notify("blocked" if need.state == "blocked" else "failed", agent,
                         summary(need.tool, need.detail) if need.state == "blocked" else need.reason)
            await self._save(agent)

    @staticmethod
    def _said(agent: str, need: Need) -> str:
        if need.state == "failed":
            return f"{agent} cannot work: {need.reason}"
        if need.awaiting:
            return f"{agent} asks {need.awaiting} to approve: {summary(need.tool, need.detail)}"
        if need.kind == "dialog":
            return f"{agent} needs you: {need.detail}"
        return f"{agent} needs you: {summary(need.tool, need.detail)}"

    async def clear(self, agent: str, settle: str = "") -> None:
        """Nothing holds the agent any more (the answer came, the tool ran, a new turn)."""
        if settle:
            await self.settle_all(agent, settle)
        need = self.needs.pop(agent, None)
        self.screens.looks.pop(agent, None)
        if need is None:
            return
        self.cleared[agent] = (need.key(), time.time(), need.notified)
        await self._changed(agent)

    async def settle_all(self, agent: str, how: str) -> None:
        for request in [r for r in self.requests.values() if r.agent == agent and not r.answer.done()]:
            self._settle(request, how)

    def _settle(self, request: Request, how: str) -> None:
        if not request.answer.done():
            request.settled = request.decided = how
            request.ended = time.time()
            request.answer.set_result({"decision": None, "settled": how})
        self._retire(request)

    def _retire(self, request: Request) -> None:
        if request.timer is not None:
            request.timer.cancel()
        self.requests.pop(request.id, None)
        self.last[request.agent] = request

    async def _changed(self, agent: str) -> None:
        """Show the agent's state and why (the `attention` event), and keep it in the store."""
        need = self.needs.get(agent)
        base = self.base.get(agent, "busy")
        state = need.state if need is not None else base
        await self.host.show_state(agent, state)  # type: ignore[arg-type]
        self.host.publish(wire.event("attention", {
            "name": agent, "state": state, **({need.state: need.as_json()} if need else {}), "ts": time.time(),
        }))
        await self._save(agent)

    async def _save(self, agent: str) -> None:
        need = self.needs.get(agent)
        await self.host.store.save_attention(agent, need.stored(self.base.get(agent, "busy")) if need else None)

    async def restarted(self, agent: str, base: str) -> None:
        """Its CLI was started again, or stopped: nothing it waited for still stands."""
        self.base[agent] = base
        await self.clear(agent, settle="its CLI restarted")

    # -- answers ------------------------------------------------------------------------------------------

    async def answer(
        self, agent: str, decision: Decision, by: str, reason: str = "", request_id: int | None = None
    ) -> Answered:
        """Answer the agent's permission request (the oldest one, or `request_id`)."""
        request = self.requests.get(request_id) if request_id is not None else self.pending(agent)
        if request is None or request.agent != agent or request.answer.done():
            raise AnswerError(wire.NOT_WAITING, self._not_waiting(agent, request_id))
        need = self.needs.get(agent)
        if not request.holding:
            how = need.how if need is not None and need.how else "answer in its pane"
            raise AnswerError(wire.CANNOT_ANSWER, f"{agent}'s request ({summary(request.tool, request.detail)})"
                                                  f" cannot be answered from podctl: {how} (podctl attach)")
        if request.kind == "question" and decision != "deny":
            raise AnswerError(wire.CANNOT_ANSWER, f"{agent} asks a question ({request.detail}): answer it in its pane"
                                                  " (podctl attach), or deny it to let the model decide itself")
        message = self._message(decision, by, reason)
        request.answer.set_result({"decision": decision, "message": message, "by": by})
        verb = {"allow": "allowed", "always": "allowed (always)", "deny": "denied"}[decision]
        request.decided = f"{verb} by {by}"
        request.ended = time.time()
        self._retire(request)
        if decision == "always":
            self.always[(agent, request.tool, request.detail)] = by
            await self.host.store.allow_always(agent, request.tool, request.detail, by, time.time())
        await self.host.log(f"{agent}: {summary(request.tool, request.detail)}: {verb} by {by}"
                            + (f": {reason}" if reason and decision == "deny" else ""), origin="attention")
        self.base[agent] = "busy"
        following = self.pending(agent)
        if following is not None:
            await self.enter(agent, Need("blocked", time.time(), following.kind, tool=following.tool,
                                         detail=following.detail, request=following.id, answerable=following.holding))
        else:
            await self.clear(agent)
        return {"name": agent, "request": request.id, "decision": decision, "tool": request.tool,
                "detail": request.detail, "by": by}

    @staticmethod
    def _message(decision: Decision, by: str, reason: str) -> str:
        if decision != "deny":
            return ""
        who = "the person running this pod" if by == USER else f"{by}, this pod's approver"
        return f"Denied by {who} (through podctl): {reason or 'no reason given'}. Do not retry it as is."

    def _not_waiting(self, agent: str, request_id: int | None) -> str:
        last = self.last.get(agent)
        if last is not None and (request_id is None or last.id == request_id) and time.time() - last.ended < ANSWERED_KEPT_S:
            ago = int(time.time() - last.ended)
            return f"{agent}'s request ({summary(last.tool, last.detail)}) was already answered: {last.decided}, {ago}s ago"
        need = self.needs.get(agent)
        if need is not None:
            return (f"{agent} is {need.state} ({need.reason or need.detail}) but has no request podctl can answer:"
                    f" {need.how or 'see its pane'}")
        return f"{agent} is not waiting for an answer"

    async def await_decision(self, agent: str, request_id: int, timeout_ms: float, final: bool) -> DecisionAnswer:
        """What a holding hook asks: the answer, or after `timeout_ms` none yet. `final`: the hook
        waits no longer, and its CLI's own dialog takes the request from now on."""
        request = self.requests.get(request_id)
        if request is None:
            last = self.last.get(agent)
            if last is not None and last.id == request_id and last.answer.done():
                return last.answer.result()
            return {"decision": None, "settled": "unknown request"}
        if request.agent != agent:
            raise AnswerError(wire.FORBIDDEN, f"request {request_id} is not {agent}'s")
        try:
            return await asyncio.wait_for(asyncio.shield(request.answer), timeout=timeout_ms / 1000.0)
        except TimeoutError:
            if final:
                await self._hook_gone(request, "podctl's wait ended: its CLI asks in its pane now; answer there")
            return {"decision": None}
        except asyncio.CancelledError:
            await asyncio.shield(self._hook_gone(request, "its hook stopped waiting (answered in its pane?)"))
            raise

    async def _hook_gone(self, request: Request, how: str) -> None:
        if request.answer.done() or not request.holding:
            return
        request.holding = False
        need = self.needs.get(request.agent)
        if need is not None and need.request == request.id:
            need.answerable, need.how = False, how
            await self._changed(request.agent)

    # -- approvals ------------------------------------------------------------------------------------------

    async def _ask_approver(self, request: Request, approval: ApprovalSpec) -> None:
        host = self.host
        to = approval.to
        route = host.routes.get(to)
        targets = [n for n in (route.to if route else [to]) if n != request.agent and n in host.active()]
        if not targets:
            await self._fall_to_person(request, f"{to} cannot approve (no such agent in the pod)")
            return
        deadline_s = seconds(approval.timeout)
        member = host.member_view(request.agent)
        text = (
            f"PERMISSION REQUEST from {request.agent} ({member.cli if member else '?'}): it wants to run {request.tool}:\n\n"
            f"{request.detail}\n\n"
            f"Answer with post_reply(ask_id=..., text=...): start with allow (this once), always (never ask again for"
            f" this exact {request.tool} call) or deny followed by the reason {request.agent} will read. Anything else"
            f" denies it. Without an answer within {approval.timeout}"
            f" {'the person decides' if approval.then == 'person' else 'it is denied'}."
        )
        msg = await host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="ask", recipients=targets, target=to, text=text, ask_mode="first",
            ask_route=route.name if route else None, ask_deadline=time.time() + deadline_s, origin="approval",
        ))
        request.approval_ask = msg.ask_id
        request.timer = asyncio.create_task(self._approval_timeout(request, approval, deadline_s))

    async def _approval_timeout(self, request: Request, approval: ApprovalSpec, after_s: float) -> None:
        await asyncio.sleep(after_s)
        if request.answer.done():
            return
        request.timer = None
        why = f"{approval.to} did not answer within {approval.timeout}"
        if approval.then == "deny" and request.holding:
            await self.answer(request.agent, "deny", wire.SYSTEM_SENDER, why, request.id)
        else:
            await self._fall_to_person(request, why)

    async def _fall_to_person(self, request: Request, why: str) -> None:
        need = self.needs.get(request.agent)
        await self.host.log(f"{request.agent}: {summary(request.tool, request.detail)}: {why}; the person answers",
                            "warning", origin="attention")
        if need is not None and need.request == request.id:
            need.awaiting = None
            await self.enter(request.agent, need)

    def is_approval(self, ask_id: int) -> bool:
        return any(r.approval_ask == ask_id for r in self.requests.values())

    async def on_reply(self, ask_id: int, sender: str, text: str) -> bool:
        """A reply to an approval ask decides its request (the first that comes)."""
        request = next((r for r in self.requests.values() if r.approval_ask == ask_id), None)
        if request is None:
            return False
        decision, reason = first_word_decision(text)
        try:
            await self.answer(request.agent, decision, sender, reason, request.id)
        except AnswerError as exc:
            await self.host.commit(NewMessage(
                sender=wire.SYSTEM_SENDER, kind="notice", recipients=[sender], text=f"Your answer was not used: {exc.message}",
            ))
        return True

    def notify_over_budget(self, agents: list[str], detail: str) -> None:
        self.notices.notify_over_budget(agents, detail)

    async def watch(self) -> None:
        await self.screens.watch()

    async def close(self) -> None:
        for request in list(self.requests.values()):
            if request.timer is not None:
                request.timer.cancel()
        self.notices.close()
