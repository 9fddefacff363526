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
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from podctl.pods.durations import seconds

from . import wire
from .paths import USER
from .ports import Notice, Ports, Screen, Sign
from .store import NewMessage, Store

if TYPE_CHECKING:
    from podctl.pods.spec import ApprovalSpec, PodSpec, RouteSpec

    from .wire import AgentState, AttentionKind, Decision

log = logging.getLogger("podctl.broker.attention")

WATCH_S = 1.0
"""How often screens are read (only those an event cannot speak for)."""
SILENT_S = 2.0
"""A busy agent with no hook for this long may be stuck on something only its screen shows."""
JUST_ENDED_S = 3.0
"""An agent whose turn ended this recently may show an error its hooks did not carry."""
LOOK_TIMEOUT_S = 3.0
CLEAR_LOOKS = 2
"""A sign must be gone from this many reads in a row before it counts as gone (no flicker)."""
EPISODE_GAP_S = 30.0
"""The same need coming back within this long is the same episode: no new line, no new notice."""
ANSWERED_KEPT_S = 600.0
"""A late answer is told who answered first, for this long."""
DETAIL_CHARS = 8192
REASON_CHARS = 2000
NOTICE_TASKS = 4
"""Notify commands running at once; more are skipped (logged), never queued without bound."""
QUESTION_TOOLS = frozenset({"AskUserQuestion", "ask_user", "question", "request_user_input"})
"""Tools whose "permission" is a question to the user: deny lets the model decide itself; approve cannot answer."""
DECIDING_WORDS: dict[str, Decision] = {"allow": "allow", "always": "always", "deny": "deny"}


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


@dataclass(frozen=True)
class MemberView:
    """What the desk reads of a member to decide whether its screen is worth a look."""

    cli: str
    state: str
    state_ts: float
    last_activity: float | None
    tools_ready: bool


@dataclass
class Need:
    """Why an agent is blocked or failed (status's `blocked` / `failed`)."""

    state: AgentState
    since: float
    kind: AttentionKind | None = None
    tool: str = ""
    detail: str = ""
    reason: str = ""
    """A failure in the CLI's own words."""
    source: str = "event"
    """`event` (a hook said so) or `screen` (its screen shows it)."""
    request: int | None = None
    answerable: bool = False
    """podctl can answer it now (a hook waits for the answer)."""
    how: str = ""
    """How a person answers it when podctl cannot."""
    awaiting: str | None = None
    """An approver it was sent to (None: the person)."""
    episode: float = 0.0
    notified: bool = False

    def key(self) -> tuple[str, str, str, str]:
        return (self.state, self.kind or "", self.tool, self.detail or self.reason)

    def same_episode(self, other: Need) -> bool:
        """`other` goes on what this one started (its screen changed its words; the same request)."""
        if (self.state, self.kind, self.source, self.request) != (other.state, other.kind, other.source, other.request):
            return False
        return self.source == "screen" or self.key() == other.key()

    def as_json(self) -> dict[str, Any]:
        """The agent's `blocked` or `failed` in `status`."""
        if self.state == "failed":
            return {"reason": self.reason, "since": self.since, "source": self.source}
        out: dict[str, Any] = {
            "kind": self.kind, "tool": self.tool or None, "detail": self.detail, "since": self.since,
            "answerable": self.answerable, "request": self.request, "source": self.source,
        }
        if self.how:
            out["how"] = self.how
        if self.awaiting:
            out["awaiting"] = self.awaiting
        return out

    def stored(self, base: str) -> dict[str, Any]:
        return {**asdict(self), "base": base}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> tuple[Need, str] | None:
        try:
            fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            need = cls(**fields)
        except (TypeError, KeyError):
            return None
        if need.state not in ("blocked", "failed"):
            return None
        # The hook that waited for an answer did not survive the broker: its CLI's own dialog answers.
        need.answerable, need.request = False, None
        if need.state == "blocked" and need.kind == "permission" and need.source == "event":
            need.how = need.how or "the broker restarted while it waited: answer in its pane"
        return need, str(data.get("base") or "busy")


@dataclass
class Request:
    """A permission request a hook holds for an answer."""

    id: int
    agent: str
    kind: AttentionKind
    tool: str
    detail: str
    since: float
    holding: bool
    answer: asyncio.Future[dict[str, Any]]
    settled: str = ""
    """How it ended without podctl's answer: answered in the pane, the hook gone."""
    decided: str = ""
    """For a late answer: "allowed by user", "answered in its pane"..."""
    ended: float = 0.0
    approval_ask: int | None = None
    timer: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass
class Looks:
    absent: int = 0
    seen_dialog: bool = False


class AnswerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def describe(tool: str, tool_input: Any) -> str:
    """What a person needs to see of a tool call: the command, the file, the question."""
    if isinstance(tool_input, str):
        return tool_input[:DETAIL_CHARS]
    if not isinstance(tool_input, dict):
        return ""
    for key in ("command", "cmd", "file_path", "filePath", "path", "url", "query", "pattern"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value[:DETAIL_CHARS]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return " ".join(value)[:DETAIL_CHARS]
    questions = tool_input.get("questions")
    if isinstance(questions, list) and questions and isinstance(questions[0], dict):
        return str(questions[0].get("question") or "")[:DETAIL_CHARS]
    return json.dumps(tool_input, ensure_ascii=False)[:DETAIL_CHARS]


def _text(value: Any, limit: int = DETAIL_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def from_notification(facts: dict[str, Any], now: float) -> Need | bool | None:
    """What a notification means: a Need, False for "the CLI waits at its prompt" (clears a
    blocked agent), None for nothing podctl shows."""
    kind = _text(facts.get("notification_type"), 64)
    message = _text(facts.get("message"))
    if kind == "idle_prompt":
        return False
    if kind == "permission_prompt":
        tool = message.rsplit(" to use ", 1)[1] if " to use " in message else ""
        return Need("blocked", now, "permission", tool=tool, detail=message, how="answer in its pane")
    if kind in ("elicitation_dialog", "elicitation_url_dialog", "question"):
        return Need("blocked", now, "question", tool=_text(facts.get("tool_name"), 200), detail=message,
                    how="answer in its pane")
    if kind == "ToolPermission":
        details = facts.get("details") if isinstance(facts.get("details"), dict) else {}
        assert isinstance(details, dict)
        detail = next((_text(details.get(k)) for k in ("command", "filePath", "fileName", "prompt", "toolName")
                       if _text(details.get(k))), message)
        named = {"exec": "Shell", "edit": "Edit", "info": "WebFetch"}.get(_text(details.get("type"), 16))
        tool = named or _text(details.get("toolName") or details.get("title"), 200)
        return Need("blocked", now, "permission", tool=tool, detail=detail,
                    how="its CLI offers no way to answer from outside: answer in its pane")
    return None


def from_failure(facts: dict[str, Any], now: float) -> Need:
    reason = (_text(facts.get("last_assistant_message"), REASON_CHARS) or _text(facts.get("error_details"), REASON_CHARS)
              or _text(facts.get("message"), REASON_CHARS) or _text(facts.get("error"), REASON_CHARS)
              or "its turn ended with an error")
    return Need("failed", now, reason=reason)


def first_word_decision(text: str) -> tuple[Decision, str]:
    """An approver's reply: its first word decides; anything else denies, with the reply as the reason."""
    found = re.match(r"\W*(\w+)\W*(.*)", text, re.DOTALL)
    word = found.group(1).lower() if found else ""
    if word in DECIDING_WORDS:
        return DECIDING_WORDS[word], (found.group(2).strip() if found else "")
    return "deny", text.strip()


def summary(tool: str, detail: str) -> str:
    """`Bash  touch build/x` (one line: the detail's first line, cut)."""
    line = detail.strip().split("\n", 1)[0]
    line = line[:200] + ("…" if len(line) > 200 or "\n" in detail.strip() else "")
    return f"{tool}  {line}" if tool else line


class AttentionDesk:
    def __init__(self, host: AttentionHost) -> None:
        self.host = host
        self.needs: dict[str, Need] = {}
        self.base: dict[str, str] = {}
        self.requests: dict[int, Request] = {}
        self.last: dict[str, Request] = {}
        self.always: dict[tuple[str, str, str], str] = {}
        self.looks: dict[str, Looks] = {}
        self.cleared: dict[str, tuple[tuple[str, str, str, str], float, bool]] = {}
        self._ids = itertools.count(int(time.time() * 1000) % 10**12)
        self._notices = asyncio.Semaphore(NOTICE_TASKS)
        self._tasks: set[asyncio.Task[Any]] = set()

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
    ) -> tuple[str, dict[str, Any] | None]:
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
            await self.settle_all(agent, "its turn ended with an error")
            await self.enter(agent, from_failure(facts, now))
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

    async def _permission(self, agent: str, facts: dict[str, Any], hold_ms: int, now: float) -> dict[str, Any]:
        tool = _text(facts.get("tool_name"), 200) or "a tool"
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
        self.needs[agent] = need
        await self._changed(agent)
        if need.episode == need.since and (old is None or not old.same_episode(need)):
            await self.host.log(self._said(agent, need), "warning", origin="attention")
        if not need.notified and not need.awaiting:
            need.notified = True
            self._notify("blocked" if need.state == "blocked" else "failed", agent,
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
        self.looks.pop(agent, None)
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
    ) -> dict[str, Any]:
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

    async def await_decision(self, agent: str, request_id: int, timeout_ms: float, final: bool) -> dict[str, Any]:
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
            return dict(await asyncio.wait_for(asyncio.shield(request.answer), timeout=timeout_ms / 1000.0))
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

    # -- notices ----------------------------------------------------------------------------------------------

    def _notify(self, on: str, agent: str, detail: str) -> None:
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
        self._notify("over_budget", agents[0] if len(agents) == 1 else "", detail)

    def _spawn(self, notice: Notice) -> None:
        if self._notices.locked():
            log.warning("notify: %d notices already running; skipped %s of %s", NOTICE_TASKS, notice.on, notice.agent)
            return
        task = asyncio.create_task(self._run_notice(notice))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_notice(self, notice: Notice) -> None:
        async with self._notices:
            try:
                said = await asyncio.wait_for(self.host.ports.notify(self.host.spec.name, notice), timeout=30.0)
            except Exception as exc:  # noqa: BLE001 - a notice that fails is logged, never fatal
                said = f"failed: {exc!r}"
            log.info("notify %s of %s: %s", notice.on, notice.agent, said)

    # -- screens -----------------------------------------------------------------------------------------------

    def worth_a_look(self, name: str, now: float) -> bool:
        """Whether only its screen can tell what holds the agent now."""
        member = self.host.member_view(name)
        if member is None:
            return False
        need = self.needs.get(name)
        if need is not None:
            return need.source == "screen" or (need.kind == "permission" and need.state == "blocked")
        if member.state in ("idle", "stopped") and not member.tools_ready:
            return True
        if member.state == "busy":
            return now - (member.last_activity or member.state_ts) >= SILENT_S
        return member.state == "idle" and now - member.state_ts < JUST_ENDED_S

    async def look(self, name: str) -> None:
        member = self.host.member_view(name)
        if member is None:
            return
        try:
            screen = await asyncio.wait_for(self.host.ports.read_screen(self.host.spec.name, name, member.cli),
                                            timeout=LOOK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - a screen that cannot be read tells nothing
            log.debug("reading %s's screen failed: %r", name, exc)
            return
        if screen is not None:
            await self.on_screen(name, screen)

    async def on_screen(self, name: str, screen: Screen) -> None:
        need = self.needs.get(name)
        looks = self.looks.setdefault(name, Looks())
        sign = screen.sign
        if sign is not None:
            looks.absent = 0
            seen = self._from_sign(sign)
            if need is None or (need.source == "screen" and need.key() != seen.key()):
                await self.enter(name, seen)
            elif need.source == "event" and sign.kind == "permission":
                looks.seen_dialog = True
            return
        if need is None:
            return
        looks.absent += 1
        if looks.absent < CLEAR_LOOKS:
            return
        if need.source == "screen":
            await self.clear(name)
        elif need.kind == "permission" and looks.seen_dialog and not need.answerable:
            self.base[name] = "busy" if screen.working is not False else "idle"
            await self.clear(name, settle="answered in its pane")

    @staticmethod
    def _from_sign(sign: Sign) -> Need:
        now = time.time()
        if sign.state == "failed":
            return Need("failed", now, reason=sign.detail[:REASON_CHARS], source="screen")
        return Need("blocked", now, sign.kind or "dialog", detail=sign.detail, source="screen", how="answer in its pane")

    async def watch(self) -> None:
        """Read the screens worth a look, every WATCH_S, for as long as the broker runs."""
        while True:
            await asyncio.sleep(WATCH_S)
            now = time.time()
            for name in self.host.active():
                if self.worth_a_look(name, now):
                    try:
                        await self.look(name)
                    except Exception:
                        log.exception("reading %s's screen failed", name)

    async def close(self) -> None:
        for request in list(self.requests.values()):
            if request.timer is not None:
                request.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
