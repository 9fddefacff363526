"""What the broker does with each request: routing, asks and replies, delivery, busy/idle.

Transport-free: `Broker.handle(frame)` takes a decoded request frame and returns the response
frame, so the server only moves bytes. Every operation's contract is in `wire.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from podctl.pods.durations import seconds
from podctl.pods.errors import PodctlError
from podctl.pods.spec import PodSpec, RouteSpec
from podctl.pods.transfer import from_wire
from pydantic import Field, ValidationError

from . import wire
from .args import (
    AskId,
    Claim,
    ClientMsgId,
    Cursor,
    Facts,
    Int64,
    Level,
    Millis,
    Name,
    Recipients,
    Seconds,
    SessionId,
    checked,
    describe,
)
from .attention import AnswerError, AttentionDesk, MemberView
from .budget import Verdict
from .paths import BRIDGE, USER, PodPaths
from .ports import Ports
from .rules import RuleEngine
from .site_ops import BRIDGE_ONLY, SiteOps
from .sites import Sites
from .store import NewMessage, RuleRecord, Store
from .usage_ops import UsageOps
from .usage_store import UsageStore
from .wake import Waker

log = logging.getLogger("podctl.broker")

USER_ONLY = frozenset({
    "set_state", "history", "subscribe", "status", "sync", "prune", "log", "handoff", "rules", "reset_rule", "asks",
    "usage_report", "usage_cursors", "usage", "approve", "deny",
})
READ_LIMIT = 500
WAITER_GRACE_TICKS = 100
"""At an ask's deadline, how many 50 ms ticks a wait_for_reply in progress gets to return "expired" to
the asker itself (then no notice is needed)."""


def needs_attention(message: dict[str, Any]) -> bool:
    """Whether a message wakes an idle recipient (the same rule as store.NEEDS_ATTENTION)."""
    return message["kind"] in ("ask", "reply") or bool(message["urgent"]) or message["from"] == USER


class OpError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Member:
    name: str
    cli: str
    role: str
    state: str = "stopped"
    removed: bool = False
    tools_ready: bool = False
    """Its MCP server (`podctl shim`) has announced itself: a woken model will have the tools."""
    last_wake: str | None = None
    last_wake_ts: float | None = None
    state_ts: float = 0.0
    """When it entered its state."""
    last_activity: float | None = None
    """Its last hook or message: an agent that is busy but silent for long may be stuck."""
    leaving: bool = False
    """Removed from the pod file while busy: it keeps its identity until its turn ends (the supervisor
    removes its window only then), so a hot reload never cuts a turn short."""
    owed_turn: bool = False
    """Its session started with messages that need it in its context (shown by the session_start hook)
    and no turn has run since: a wake now has something to act on."""
    starting: bool = False
    """Its CLI was just (re)started and has not shown it is up (no tool session, no hook yet): shown
    as `starting`, not `idle`."""
    site: str | None = None
    """Where it runs, in a pod across machines (broker/sites.py)."""
    remote: bool = False
    """It runs at another site: its state is what its site last reported (`reported_at`); never woken here."""
    reported_at: float | None = None
    unread: int = 0
    """A remote member's unread messages, as its site reported them."""


class Broker(SiteOps, UsageOps):
    def __init__(
        self, spec: PodSpec, pod_file: Path | None, paths: PodPaths, store: Store, ports: Ports | None = None, *,
        site: str | None = None,
    ) -> None:
        self.ports = ports or Ports()
        self.spec = spec
        self.pod_file = pod_file
        self.paths = paths
        self.store = store
        self.usage = UsageStore(store)
        self.verdict: Verdict | None = None
        self.members: dict[str, Member] = {}
        self.tokens: dict[str, str] = {}
        self.routes: dict[str, RouteSpec] = {}
        self._reply_events: dict[int, asyncio.Event] = {}
        self.subscribers: set[Callable[[dict[str, Any]], None]] = set()
        self.waker: Waker | None = None
        self.rules = RuleEngine(self)
        self.attention = AttentionDesk(self)
        self.handed_off: dict[str, str] = {}
        self.mcp_sessions: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = time.time()
        self._expiries: dict[int, asyncio.Task[None]] = {}
        self._waiting: dict[int, int] = {}
        """wait_for_reply calls in progress, by ask_id."""
        self.site = site
        """The site this machine runs, in a pod across machines (None: the pod is this machine's alone)."""
        self.sites: Sites | None = None

    # -- setup ----------------------------------------------------------------------

    async def load(self) -> None:
        """Restore every agent the store knows (with its last known state), then apply the spec.

        The store is loaded first so that the spec may drop agents the pod had (a pod file
        edited while the pod was down): they are removed like on a hot reload, their history kept.
        An agent no longer in the spec has no CLI running for it, so it is stopped at once."""
        for row in (await self.store.overview())["agents"]:
            name = row["name"]
            wanted = name in self.spec.agents
            self.members[name] = Member(
                name, row["cli"], row["role"], row["state"] if wanted else "stopped",
                removed=bool(row["removed"]), state_ts=row["state_ts"] or 0.0,
            )
        await self.apply_spec(self.spec)
        for ask_id, deadline in await self.store.asks_to_expire():
            self._expire_at(ask_id, deadline)
        await self.attention.load()

    async def apply_spec(self, spec: PodSpec) -> dict[str, list[str]]:
        self.spec = spec
        self.tokens[USER] = self.paths.issue_token(USER)
        self._configure_sites(spec)
        for name in spec.local_agents(self.site):
            self.tokens[name] = self.paths.issue_token(name)
        told = await self.store.told_roles()
        added, removed, changed = await self.store.sync_agents(
            {name: (a.cli, a.role) for name, a in spec.agents.items()}
        )
        for name, agent in spec.agents.items():
            member = self.members.get(name)
            if member is None or member.removed:
                self.members[name] = Member(name, agent.cli, agent.role, member.state if member else "stopped")
            else:
                member.cli, member.role = agent.cli, agent.role
        for name in removed:
            member = self.members[name]
            member.removed = True
            if member.state == "busy":
                member.leaving = True
            else:
                await self._gone(member)
        if self.sites is not None:
            self.sites.configure()
        self.routes = {r.name: r for r in spec.routes}
        await self.rules.configure()
        await self.save_pricing()
        await self.judge_budgets()
        await self._tell_roles(told)
        return {"added": added, "removed": removed, "changed": changed}

    async def _tell_roles(self, told: dict[str, str]) -> None:
        """An agent whose model was last told another role than the one it has now is told the new one,
        whether it changed while the pod ran or while it was down: a notice at its next turn (a new
        session's intro has it too)."""
        for name, agent in self.spec.agents.items():
            if name in told and told[name] != agent.role:
                await self._system_message(
                    [name], f"Your role in pod {self.spec.name} changed. Your role is now:\n{agent.role or '(none)'}"
                )
                await self.store.set_told_role(name, agent.role)

    async def close(self) -> None:
        """Stop the timers of asks' deadlines (they are taken up again from the store at the next start)."""
        tasks = list(self._expiries.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=2.0)

    def active(self) -> list[str]:
        return [m.name for m in self.members.values() if not m.removed]

    def local(self) -> list[str]:
        """The active members that run here (all of them, but in a pod across machines)."""
        return [m.name for m in self.members.values() if not m.removed and not m.remote]

    # -- transport entry -----------------------------------------------------------------

    async def handle(self, frame: dict[str, Any]) -> dict[str, Any]:
        req_id = frame.get("id")
        if frame.get("v") != wire.PROTOCOL_VERSION:
            return wire.error(
                req_id, wire.PROTOCOL_MISMATCH,
                f"client speaks protocol {frame.get('v')!r}, this broker speaks {wire.PROTOCOL_VERSION}:"
                " use the same podctl version for the broker and its clients (podctl down, then up)",
            )
        op = frame.get("op")
        args = frame.get("args") or {}
        try:
            if not isinstance(op, str) or not isinstance(args, dict):
                raise OpError(wire.BAD_REQUEST, "a request needs a string 'op' and an object 'args'")
            agent = self._authenticate(frame.get("agent"), frame.get("token"))
            if op in USER_ONLY and agent != USER:
                raise OpError(wire.FORBIDDEN, f"{op} is for the pod's owner (user) only")
            if (op in BRIDGE_ONLY) != (agent == BRIDGE) and op != "hello":
                raise OpError(wire.FORBIDDEN, f"{op} is for the pod's bridge only" if op in BRIDGE_ONLY
                              else f"the pod's bridge may use only {', '.join(sorted(BRIDGE_ONLY))}")
            method = getattr(self, f"op_{op}", None)
            if method is None:
                raise OpError(wire.BAD_REQUEST, f"unknown operation {op!r}")
            return wire.ok(req_id, await method(agent, **args))
        except OpError as exc:
            return wire.error(req_id, exc.code, exc.message)
        except ValidationError as exc:
            return wire.error(req_id, wire.BAD_REQUEST, f"bad arguments for {op}: {describe(exc)}")
        except TypeError as exc:
            return wire.error(req_id, wire.BAD_REQUEST, f"bad arguments for {op}: {exc}")
        except Exception as exc:
            log.exception("%s failed", op)
            return wire.error(req_id, wire.INTERNAL, f"{op} failed inside the broker: {exc}")

    def identify(self, frame: dict[str, Any]) -> str | None:
        """The agent a request frame authenticates as (None if it does not: `handle` refuses it)."""
        try:
            return self._authenticate(frame.get("agent"), frame.get("token"))
        except OpError:
            return None

    def _authenticate(self, agent: Any, token: Any) -> str:
        if not isinstance(agent, str) or not isinstance(token, str):
            raise OpError(wire.AUTH, "every request must name its agent and carry that agent's token")
        expected = self.tokens.get(agent)
        if expected is None and agent in self.local():
            try:
                expected = self.tokens[agent] = self.paths.read_token(agent)
            except FileNotFoundError:
                expected = None
        if expected is None or not hmac.compare_digest(expected, token):
            raise OpError(wire.AUTH, f"the token does not belong to agent {agent!r} of pod {self.spec.name}")
        return agent

    # -- messages ------------------------------------------------------------------------

    def _check_text(self, text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise OpError(wire.EMPTY_TEXT, "the message text is empty: say something")
        size = len(text.encode("utf-8"))
        limit = self.spec.limits.message_bytes
        if size > limit:
            raise OpError(
                wire.TOO_LARGE,
                f"the message is {size} bytes; this pod's limit is {limit} (limits.message_bytes in the pod file):"
                " shorten it or point to a file",
            )
        return text

    def _resolve(self, sender: str, to: Any) -> tuple[list[str], str, RouteSpec | None]:
        """Recipients of `to` (a name, a list of names, `all`, or a route name)."""
        if isinstance(to, str):
            names, target = [to], to
        elif isinstance(to, list) and to and all(isinstance(n, str) for n in to):
            names, target = to, ",".join(to)
        else:
            raise OpError(wire.BAD_REQUEST, "'to' must be an agent name, a list of names, or \"all\"")
        if isinstance(to, str) and to in self.routes:
            route = self.routes[to]
            if route.from_ is not None and sender not in route.from_ and sender != USER:
                raise OpError(wire.FORBIDDEN, f"route {to!r} is for {', '.join(route.from_)} only")
            return [n for n in route.to if n != sender], to, route
        members = self.members
        out: list[str] = []
        for name in names:
            if name == "all":
                out.extend(n for n in self.active() if n != sender)
            elif (name in members and not members[name].removed) or name == USER:
                out.append(name)
            elif name in self.members:
                raise OpError(wire.UNKNOWN_AGENT, f"agent {name!r} was removed from pod {self.spec.name}")
            else:
                known = ", ".join(sorted([*self.active(), *self.routes]))
                raise OpError(wire.UNKNOWN_AGENT, f"no agent or route {name!r} in pod {self.spec.name} (known: {known})")
        out = list(dict.fromkeys(out))
        if not out:
            raise OpError(wire.UNKNOWN_AGENT, "nobody to send to: the pod has no other agent")
        return out, target, None

    def _recipient_states(self, names: list[str]) -> list[dict[str, str]]:
        """Each recipient's state; one over budget says so (its message waits until the budget is raised)."""
        out = []
        for n in names:
            entry = {"name": n, "state": "human" if n == USER else self.members[n].state, **self._site_of(n)}
            reason = self.over_budget(n) if n != USER else None
            if reason:
                entry["over_budget"] = f"{reason}: not woken until the budget is raised"
            out.append(entry)
        return out

    async def commit(self, msg: NewMessage) -> NewMessage:
        msg = await self.store.commit_message(msg)
        if msg.conflict:
            raise OpError(
                wire.CONFLICT,
                f"client_msg_id {msg.client_msg_id!r} was already used by {msg.sender} for another message"
                f" (#{msg.id}); use a new id for a new message",
            )
        if not msg.duplicate:
            self._after_commit(msg)
        return msg

    def _after_commit(self, msg: NewMessage) -> None:
        sender = self.members.get(msg.sender)
        if sender is not None:
            sender.last_activity = msg.ts
        data = msg.as_dict()
        if self.subscribers:
            self.publish(wire.event("message", data))
        self.rules.on_message(msg)
        if msg.kind == "reply" and msg.ask_id is not None:
            event = self._reply_events.pop(msg.ask_id, None)
            if event is not None:
                event.set()
        if needs_attention(data):
            for name in msg.recipients:
                self._maybe_wake(name)
        if msg.kind == "reply" and msg.ask_id is not None and self.attention.is_approval(msg.ask_id):
            self._background(self.attention.on_reply(msg.ask_id, msg.sender, msg.text))

    def wakeable(self, name: str) -> bool:
        """Idle, its tools are up, and within budget: a nudge now starts a turn that can answer."""
        member = self.members.get(name)
        return (member is not None and member.state == "idle" and member.tools_ready and not member.removed
                and not member.remote and self.over_budget(name) is None)

    async def _has_unread(self, name: str) -> bool:
        return bool(await self.store.pending_wakeworthy(name))

    def _maybe_wake(self, name: str) -> None:
        if self.waker is not None and self.wakeable(name):
            self.waker.request(name)

    async def _system_message(self, recipients: list[str], text: str, kind: str = "notice") -> NewMessage:
        return await self.commit(NewMessage(sender=wire.SYSTEM_SENDER, kind=kind, recipients=recipients, text=text))

    def publish(self, frame: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            subscriber(frame)

    # -- operations: the seven tools -------------------------------------------------------

    @checked
    async def op_hello(self, agent: str, shim: bool = False) -> dict[str, Any]:
        if shim:
            await self._tools_up(agent)
        limits = self.spec.limits
        return {
            "pod": self.spec.name, "protocol": wire.PROTOCOL_VERSION, "broker_pid": os.getpid(), "agent": agent,
            "limits": {"message_bytes": limits.message_bytes, "wait_cap_ms": limits.wait_cap_ms},
        }

    @checked
    async def op_mcp(self, agent: str, session: SessionId, wait_cap_ms: Int64 | None = None) -> dict[str, Any]:
        """The relay of the agent's CLI opens its MCP session (server.py switches the connection):
        the agent's tools are up from now on, so it may be woken."""
        if agent == USER:
            raise OpError(wire.FORBIDDEN, "MCP sessions are for agents")
        self.mcp_sessions[agent] = self.mcp_sessions.get(agent, 0) + 1
        await self._tools_up(agent)
        cap = self.spec.limits.wait_cap_ms
        return {"mcp": True, "session": session, "wait_cap_ms": min(wait_cap_ms or cap, cap)}

    def mcp_closed(self, agent: str) -> None:
        """An MCP session ended (its CLI exited, or the connection dropped): with none left, the
        agent has no tools to be woken with until its relay connects again."""
        left = self.mcp_sessions.get(agent, 0) - 1
        self.mcp_sessions[agent] = max(0, left)
        member = self.members.get(agent)
        if left <= 0 and member is not None:
            self._set_tools(member, False)

    def _set_tools(self, member: Member, ready: bool) -> None:
        if member.tools_ready != ready:
            member.tools_ready = ready
            self.publish(wire.event("tools", {"name": member.name, "ready": ready, "ts": time.time()}))

    async def _tools_up(self, agent: str) -> None:
        member = self.members.get(agent)
        if member is not None and not member.tools_ready:
            self._set_tools(member, True)
            if member.starting:
                await self._set_state(agent, member.state)  # its CLI is up: no longer starting
            if member.state == "idle" and (member.owed_turn or await self.store.pending_wakeworthy(agent)):
                self._maybe_wake(agent)

    @checked
    async def op_tell(
        self, agent: str, to: Recipients, text: str, urgent: bool = False, client_msg_id: ClientMsgId | None = None
    ) -> dict[str, Any]:
        text = self._check_text(text)
        recipients, target, _ = self._resolve(agent, to)
        msg = await self.commit(NewMessage(
            sender=agent, kind="tell", recipients=recipients, target=target, text=text,
            urgent=bool(urgent), client_msg_id=client_msg_id,
        ))
        return {"message_id": msg.id, "status": "queued", "recipients": self._recipient_states(recipients)}

    @checked
    async def op_ask(
        self, agent: str, to: Recipients, text: str, client_msg_id: ClientMsgId | None = None
    ) -> dict[str, Any]:
        text = self._check_text(text)
        recipients, target, route = self._resolve(agent, to)
        if agent in recipients:
            raise OpError(wire.BAD_REQUEST, "you cannot ask yourself")
        deadline = time.time() + seconds(route.timeout) if route is not None else None
        msg = await self.commit(NewMessage(
            sender=agent, kind="ask", recipients=recipients, target=target, text=text,
            client_msg_id=client_msg_id, ask_mode=route.mode if route else "all",
            ask_route=route.name if route else None, ask_deadline=deadline,
        ))
        if deadline is not None and not msg.duplicate and msg.ask_id is not None:
            self._expire_at(msg.ask_id, deadline)
        return {
            "ask_id": msg.ask_id, "message_id": msg.id, "status": "queued",
            "recipients": self._recipient_states(recipients),
            "mode": route.mode if route else "all",
        }

    async def _ask_for(self, agent: str, ask_id: Any) -> dict[str, Any]:
        if isinstance(ask_id, str) and ask_id.isdigit():
            ask_id = int(ask_id)
        if not isinstance(ask_id, int) or isinstance(ask_id, bool):
            raise OpError(wire.BAD_REQUEST, f"ask_id must be the number ask() returned, not {ask_id!r}")
        ask = await self.store.ask(ask_id)
        if ask is None:
            raise OpError(wire.UNKNOWN_ASK, f"no ask with ask_id {ask_id} in pod {self.spec.name}")
        if agent not in (ask["asker"], USER):
            raise OpError(wire.FORBIDDEN, f"ask {ask_id} was sent by {ask['asker']}; only they can wait for its replies")
        return ask

    async def ask_status(self, ask: dict[str, Any]) -> dict[str, Any]:
        targets: dict[str, int | None] = ask["targets"]
        reply_ids = [rid for rid in targets.values() if rid]
        replies = [
            {"from": m["from"], "text": m["text"], "message_id": m["id"], "ts": m["ts"]}
            for m in await self.store.messages_by_id(reply_ids)
        ]
        waiting_on = sorted(a for a, rid in targets.items() if not rid)
        done = (bool(replies) if ask["mode"] == "first" else not waiting_on) or not targets
        if done:
            status = "replied"
        elif ask["deadline"] is not None and time.time() >= ask["deadline"]:
            status = "expired"
        else:
            status = "waiting"
        out: dict[str, Any] = {
            "ask_id": ask["id"], "status": status, "mode": ask["mode"], "replies": replies, "waiting_on": waiting_on,
        }
        if ask["route"]:
            out["route"] = ask["route"]
        return out

    @checked
    async def op_wait_for_reply(self, agent: str, ask_id: AskId, timeout_ms: Millis = 30_000) -> dict[str, Any]:
        ask = await self._ask_for(agent, ask_id)
        self._waiting[ask["id"]] = self._waiting.get(ask["id"], 0) + 1
        try:
            return await self._wait_for_reply(agent, ask, min(float(timeout_ms), wire.MAX_WAIT_MS) / 1000.0)
        finally:
            left = self._waiting.pop(ask["id"], 1) - 1
            if left:
                self._waiting[ask["id"]] = left

    async def _wait_for_reply(self, agent: str, ask: dict[str, Any], wait_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            event = self._reply_events.setdefault(ask["id"], asyncio.Event())
            result = await self.ask_status(await self.store.ask(ask["id"]) or ask)
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

    @checked
    async def op_check_replies(self, agent: str, ask_id: AskId) -> dict[str, Any]:
        ask = await self._ask_for(agent, ask_id)
        result = await self.ask_status(ask)
        if result["status"] not in ("replied", "expired"):
            result["status"] = "waiting"
        result["delivery"] = (await self.store.deliveries_of([ask["id"]])).get(ask["id"], [])
        return await self._returned(agent, result)

    async def _returned(self, agent: str, result: dict[str, Any]) -> dict[str, Any]:
        """Replies a tool call hands to the caller are delivered: marked read, so no hook shows them again.
        An asker who is handed "expired" knows it: no expiry notice follows."""
        await self._mark_read(agent, [r["message_id"] for r in result["replies"]])
        if result["status"] == "expired":
            await self.store.mark_expiry_checked(result["ask_id"], time.time())
        return result

    def _expire_at(self, ask_id: int, deadline: float) -> None:
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
        ask = await self.store.ask(ask_id)
        if ask is None or ask["expiry_checked"] is not None:
            return
        status = await self.ask_status(ask)
        if not await self.store.mark_expiry_checked(ask_id, time.time()) or status["status"] != "expired":
            return
        asker = ask["asker"]
        if asker != USER and (asker not in self.members or self.members[asker].removed):
            return
        route = f" (route {ask['route']})" if ask["route"] else ""
        head = f"Your ask #{ask_id}{route} expired: no answer from {', '.join(status['waiting_on'])} before its timeout."
        answers = "\n\n".join(f"[{r['from']}]\n{r['text']}" for r in status["replies"])
        text = head + (f" Answers that arrived:\n\n{answers}" if answers else " Nobody answered.")
        await self.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="notice", recipients=[asker], target=asker,
            text=text[: self.spec.limits.message_bytes], urgent=True, ask_id=ask_id,
        ))

    async def _mark_read(self, agent: str, ids: list[int]) -> None:
        now = time.time()
        self._delivered(agent, await self.store.mark_read(agent, ids, now), "read", now)

    def _delivered(self, agent: str, ids: list[int], state: str, ts: float) -> None:
        """Tell subscribers (the live view) that messages reached a model (injected) or were read."""
        if ids:
            self.publish(wire.event("delivery", {"to": agent, "ids": ids, "state": state, "ts": ts}))

    @checked
    async def op_read_messages(self, agent: str, since: Cursor | None = None, limit: Int64 = 100) -> dict[str, Any]:
        if not 1 <= limit <= READ_LIMIT:
            raise OpError(wire.BAD_REQUEST, f"limit must be between 1 and {READ_LIMIT}")
        found = await (self.store.unseen(agent, limit) if since is None else self.store.inbox(agent, since, limit))
        messages = found.messages
        cursor = messages[-1]["id"] if messages else (since or 0)
        await self._mark_answered(agent, messages)
        await self._mark_read(agent, [m["id"] for m in messages])
        return {"messages": messages, "next": cursor, "more": found.more}

    @checked
    async def op_post_reply(
        self, agent: str, ask_id: AskId, text: str, client_msg_id: ClientMsgId | None = None
    ) -> dict[str, Any]:
        text = self._check_text(text)
        if isinstance(ask_id, str) and ask_id.isdigit():
            ask_id = int(ask_id)
        ask = await self.store.ask(ask_id) if isinstance(ask_id, int) and not isinstance(ask_id, bool) else None
        if ask is None:
            raise OpError(wire.UNKNOWN_ASK, f"no ask with ask_id {ask_id!r} in pod {self.spec.name}")
        if agent not in ask["targets"]:
            raise OpError(wire.NOT_ASKED, f"ask {ask_id} was not sent to {agent}; only its recipients can reply")
        followup = ask["targets"][agent] is not None
        recipients = self.reply_recipients(ask, followup)
        msg = await self.commit(NewMessage(
            sender=agent, kind="reply", recipients=recipients, target=recipients[0] if recipients else ask["asker"],
            text=text, ask_id=ask["id"], followup=followup, client_msg_id=client_msg_id,
            reply_to=None if followup else (ask["id"], agent),
        ))
        out: dict[str, Any] = {
            "message_id": msg.id, "ask_id": ask["id"], "followup": followup, "status": "queued", "to": recipients,
        }
        if followup:
            out.update(await self._followup_note(agent, ask["id"], recipients))
        return out

    def reply_recipients(self, ask: dict[str, Any], followup: bool) -> list[str]:
        """Who a reply goes to: the asker; for a rule's ask, nobody while the rule gathers its answers
        (it sends them on together), else the agent the rule asked for (a late answer, a follow-up)."""
        if ask["asker"] != wire.SYSTEM_SENDER:
            return [ask["asker"]]
        if not followup and (self.rules.gathering(ask["id"]) or self.gathered_elsewhere(ask)):
            return []
        behalf = ask["behalf"]
        return [behalf] if behalf in self.active() else []

    async def _followup_note(self, agent: str, ask_id: int, recipients: list[str]) -> dict[str, Any]:
        """A reply to an ask the agent already answered is a follow-up: say so, and name the asks to it
        that are still open (it may have meant one of them: models copy the first ask_id they see)."""
        sent = f"sent to {', '.join(recipients)} as a follow-up" if recipients else "kept in the transcript"
        note = f"You had already answered ask #{ask_id}: this reply was {sent}; it does not answer another ask."
        still = [(i, a) for i, a in await self.store.open_asks_to(agent, time.time(), 10) if i != ask_id]
        if not still:
            return {"note": note}
        listed = ", ".join(f"ask #{i} from {a}" for i, a in still)
        note += f" Still open and waiting for your answer: {listed}. Answer with post_reply(ask_id={still[0][0]}, text=...)."
        return {"note": note, "open_asks": [{"ask_id": i, "from": a} for i, a in still]}

    async def _mark_answered(self, agent: str, messages: list[dict[str, Any]]) -> None:
        """Each ask to `agent` among `messages` says whether it already answered it (`answered`): a model
        copying the first ask_id it sees would otherwise reply to an answered ask."""
        asks = [m for m in messages if m["kind"] == "ask" and agent in m["to"]]
        answered = await self.store.answered_by(agent, [m["ask_id"] for m in asks])
        for m in asks:
            m["answered"] = m["ask_id"] in answered

    @checked
    async def op_list_agents(self, agent: str) -> dict[str, Any]:
        unread = await self.store.unread_counts()
        agents = [
            {"name": m.name, "cli": m.cli, "role": m.role, "state": m.state, "unread": unread.get(m.name, 0),
             "you": m.name == agent, **self._where(m.name), **self._site_fields(m)}
            for m in self.members.values() if not m.removed
        ]
        return {"pod": self.spec.name, "agents": agents, "routes": self._routes()}

    def _where(self, name: str) -> dict[str, Any]:
        """The folder an agent works in (and its worktree's branch): where a reviewer finds its files."""
        if name not in self.spec.agents or (name in self.members and self.members[name].remote):
            return {}
        try:
            return {"workdir": str(self.spec.agent_workdir(name)), "branch": self.spec.agent_branch(name)}
        except PodctlError:
            return {}

    def _routes(self) -> list[dict[str, Any]]:
        return [
            {"name": r.name, "to": list(r.to), "mode": r.mode, "timeout": r.timeout,
             "from": list(r.from_) if r.from_ is not None else None}
            for r in self.routes.values()
        ]

    # -- operations: hooks ------------------------------------------------------------------

    @checked
    async def op_hook(
        self, agent: str, event: str, *, inject: bool = True, attention_only: bool = False, shows: bool = True,
        intro: bool = False, facts: Facts | None = None, hold_ms: Int64 = 0,
    ) -> dict[str, Any]:
        if event not in wire.HOOK_EVENTS:
            raise OpError(wire.BAD_REQUEST, f"event must be one of {', '.join(wire.HOOK_EVENTS)}")
        if agent == USER:
            raise OpError(wire.FORBIDDEN, "hooks are for agents")
        base = (None if event in wire.ATTENTION_EVENTS else
                "busy" if event in wire.BUSY_EVENTS else "idle" if event in wire.IDLE_EVENTS else "stopped")
        member = self.members[agent]
        member.last_activity = time.time()
        state, request = await self.attention.on_hook(agent, event, base, facts or {}, min(max(0, hold_ms), 3_600_000))
        await self._set_state(agent, state)
        if state != "idle":
            member.owed_turn = False
        if event == "turn_start" and self.waker is not None:
            self.waker.turn_started(agent)
        if event == "turn_end":
            self.rules.on_turn_end(agent)
        claim: str | None = None
        messages: list[dict[str, Any]] = []
        pointers: list[dict[str, Any]] = []
        more = 0
        if inject and state not in ("stopped", "blocked", "failed"):
            claim, messages, pointers, more = await self.store.claim(
                agent, time.time(), wire.CLAIM_LEASE_S, attention_only=bool(attention_only),
                max_bytes=wire.HOOK_BATCH_BYTES, max_count=wire.HOOK_BATCH_COUNT,
            )
            await self._mark_answered(agent, messages)
        result: dict[str, Any] = {
            "state": state, "claim": claim, "messages": messages, "too_large": pointers, "more": more,
        }
        if request is not None:
            result["request"] = request
        if event == "session_start" or intro:
            await self._session_start(member, result, bool(shows))
            if state != "idle":
                member.owed_turn = False  # shown in the turn that runs now: no turn is owed for them
        if state == "idle":
            pending = await self.store.pending_wakeworthy(agent)
            shown_now = len([m for m in messages if needs_attention(m)]) + len(pointers)
            if (event == "session_start" and (pending or member.owed_turn)) or (
                event == "turn_end" and pending > shown_now
            ):
                self._maybe_wake(agent)
        return result

    async def _session_start(self, member: Member, result: dict[str, Any], shows: bool) -> None:
        """A new session of the agent's CLI: its model's context is new. It gets the pod (its role, its
        team) and, besides the messages no model of it has seen, the asks to it that are still open and
        that it has not answered (it was shown them in an earlier session), when its hook shows what it
        is answered. Those need a turn: the agent is woken once for them, not again at every turn end."""
        result["context"] = {
            "pod": self.spec.name,
            "agent": member.name,
            "role": member.role,
            "members": [
                {"name": m.name, "cli": m.cli, "role": m.role, "state": m.state, **self._site_of(m.name)}
                for m in self.members.values() if not m.removed
            ],
            "routes": self._routes(),
        }
        if not shows:
            return
        reshown = await self._open_asks_again(member.name, result["messages"])
        result["open_asks"] = reshown
        member.owed_turn = bool(reshown) or bool(result["too_large"]) or any(needs_attention(m) for m in result["messages"])

    async def _open_asks_again(self, agent: str, shown: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The open asks to `agent` that it was shown before and has not answered, oldest first, within
        what one hook shows beside `shown`; one too large to show has its text left out (`too_large`)."""
        room = wire.HOOK_BATCH_BYTES - sum(len(m["text"].encode("utf-8")) for m in shown)
        out = []
        for message, size in await self.store.seen_open_asks(agent, time.time(), wire.HOOK_BATCH_COUNT):
            if size <= room:
                room -= size
                out.append(message)
            else:
                out.append({**message, "text": "", "too_large": size})
        return out

    @checked
    async def op_ack_injected(self, agent: str, claim: Claim) -> dict[str, Any]:
        now = time.time()
        ids = await self.store.ack_claim(agent, claim, now)
        self._delivered(agent, ids, "injected", now)
        return {"injected": len(ids)}

    async def _gone(self, member: Member) -> None:
        """A removed agent is out of the pod: no identity, nothing to wake, and no open ask waits for
        it any more (the asker is told; an ask its other members answered is complete)."""
        member.leaving = False
        member.state = "stopped"
        self.tokens.pop(member.name, None)
        for ask_id in await self.store.drop_from_asks(member.name, time.time()):
            await self._left_ask(member.name, ask_id)

    async def _left_ask(self, name: str, ask_id: int) -> None:
        ask = await self.store.ask(ask_id)
        if ask is None:
            return
        event = self._reply_events.pop(ask_id, None)
        if event is not None:
            event.set()
        status = await self.ask_status(ask)
        asker = self.rules.settle_soon(ask_id) if ask["asker"] == wire.SYSTEM_SENDER else ask["asker"]
        if asker is None or (asker != USER and (asker not in self.members or self.members[asker].removed)):
            return
        if status["status"] == "replied":
            then = "it is complete with the answers of the others" if status["replies"] else "nobody else was asked"
        else:
            then = f"it still waits for {', '.join(status['waiting_on'])}"
        await self._system_message(
            [asker], f"{name} was removed from pod {self.spec.name} and will not answer ask #{ask_id}: {then}."
        )

    async def _set_state(self, name: str, state: str, fresh: bool = False) -> None:
        """A hook's state, or (`fresh`) the state of a CLI just (re)started: its clock starts again
        even if the state is the same, and an idle one is `starting` until it shows it is up."""
        member = self.members[name]
        if state == "stopped":
            self._set_tools(member, False)
        starting = fresh and state == "idle" and not member.tools_ready
        if member.state == state and not fresh and member.starting == starting:
            return
        now = time.time()
        member.state, member.state_ts, member.starting = state, now, starting
        await self.store.set_state(name, state, now)
        self.publish(wire.event("state", {"name": name, "state": state, "ts": now, "starting": starting}))
        if member.leaving and state != "busy":
            await self._gone(member)

    # -- operations: the owner ------------------------------------------------------------------

    @checked
    async def op_set_state(self, agent: str, name: Name, state: str) -> dict[str, Any]:
        if name not in self.members or self.members[name].removed:
            raise OpError(wire.UNKNOWN_AGENT, f"no agent {name!r} in pod {self.spec.name}")
        if self.members[name].remote:
            raise OpError(wire.FORBIDDEN, f"agent {name} runs at site {self.members[name].site}: its state is that site's")
        if state not in wire.AGENT_STATES:
            raise OpError(wire.BAD_REQUEST, f"state must be one of {', '.join(wire.AGENT_STATES)}")
        await self.attention.restarted(name, state)
        await self._set_state(name, state, fresh=True)
        if state == "idle" and await self.store.pending_wakeworthy(name):
            self._maybe_wake(name)
        return {"name": name, "state": state}

    @checked
    async def op_history(self, agent: str, since: Cursor = 0, limit: Int64 = 200) -> dict[str, Any]:
        if not 1 <= limit <= 5000:
            raise OpError(wire.BAD_REQUEST, "limit must be between 1 and 5000")
        found = await self.store.history(since, limit)
        messages = found.messages
        deliveries = await self.store.deliveries_of([m["id"] for m in messages])
        for m in messages:
            m["delivery"] = deliveries.get(m["id"], [])
        return {"messages": messages, "next": messages[-1]["id"] if messages else since, "more": found.more}

    @checked
    async def op_status(self, agent: str) -> dict[str, Any]:
        stored = await self.store.overview()
        unseen = stored["unseen"]
        return {
            "pod": self.spec.name,
            "pod_file": str(self.pod_file) if self.pod_file else None,
            "last_message_id": stored["last_message_id"],
            "broker_pid": os.getpid(),
            "started": self.started,
            "agents": [
                {"name": m.name, "cli": m.cli, "role": m.role, "state": m.state, "state_ts": m.state_ts or None,
                 "last_activity": m.last_activity, "unread": unseen.get(m.name, 0),
                 "last_wake": m.last_wake, "last_wake_ts": m.last_wake_ts,
                 "handed_off_to": self.handed_off.get(m.name),
                 "waking": bool(self.waker and self.waker.pending(m.name)), "tools_ready": m.tools_ready,
                 "usage": self.usage_of(m.name), "over_budget": self.over_budget(m.name),
                 **self.attention.status_fields(m.name), **({"leaving": True} if m.leaving else {}),
                 **({"starting": True} if m.starting else {}), **self._site_fields(m)}
                for m in self.members.values() if not m.removed or m.leaving
            ],
            "routes": self._routes(),
            "pending_deliveries": unseen,
            "usage": self.verdict.pod.as_json() if self.verdict else None,
            "budget": self._budget_limits(),
            **({"sites": self.sites.status()} if self.sites is not None else {}),
        }

    @checked
    async def op_sync(self, agent: str, spec: dict[str, Any], source: str) -> dict[str, Any]:
        """Take the desired state the applier just applied (never a file the broker reads itself)."""
        try:
            new = from_wire(spec, source)
        except PodctlError as exc:
            raise OpError(wire.BAD_REQUEST, str(exc)) from None
        if new.name != self.spec.name:
            raise OpError(wire.BAD_REQUEST, f"this broker serves pod {self.spec.name}, not {new.name}")
        self.pod_file = new.source
        return await self.apply_spec(new)

    @checked
    async def op_prune(self, agent: str, older_than_s: Seconds | None = None) -> dict[str, Any]:
        if older_than_s is None:
            days = self.spec.limits.retention_days
            if days is None:
                raise OpError(
                    wire.BAD_REQUEST,
                    "no retention set: pass --older-than, or set limits.retention_days in the pod file",
                )
            older_than_s = days * 86400
        return {"deleted": await self.store.prune(time.time() - older_than_s)}

    @checked
    async def op_log(self, agent: str, text: str, level: Level = "info") -> dict[str, Any]:
        if not text:
            raise OpError(wire.EMPTY_TEXT, "nothing to log")
        return {"message_id": await self.log(text, str(level))}

    async def log(self, text: str, level: str = "info", origin: str | None = None) -> int | None:
        """A line in the pod's transcript (kind "log", from podctl, to nobody) and its log file."""
        log.log(logging.WARNING if level in ("warning", "error") else logging.INFO, "%s", text)
        msg = await self.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="log", recipients=[], target=level, text=text[:65536], origin=origin,
        ))
        return msg.id

    @checked
    async def op_handoff(
        self, agent: str, source: Annotated[Name, Field(alias="from")], to: Name, reason: str = "asked by the user"
    ) -> dict[str, Any]:
        target = to
        for name in (source, target):
            if name not in self.active():
                raise OpError(wire.UNKNOWN_AGENT, f"no agent {name!r} in pod {self.spec.name}")
        if source == target:
            raise OpError(wire.BAD_REQUEST, "hand-off needs two different agents")
        return await self.handoff(source, target, reason=reason or "asked by the user")

    async def handoff(self, source: str, target: str, reason: str) -> dict[str, Any]:
        """Give `target` what it needs to take over `source`'s thread, wake it, mark `source`."""
        recent = await self.store.conversation_of(source, 20)
        task = next((m for m in reversed(recent) if m["from"] == USER), None)
        digest = "\n".join(f"- #{m['id']} {m['from']} -> {','.join(m['to'])} ({m['kind']}): {m['text'][:400]}" for m in recent)
        text = (
            f"HAND-OFF: you take over the work of {source} ({self.members[source].cli}) in pod {self.spec.name}"
            f" ({reason}).\n\nTheir role:\n{self.members[source].role or '(none)'}\n\n"
            f"Task in progress:\n{task['text'] if task else '(no task from the user on record)'}\n\n"
            f"Recent conversation of {source}:\n{digest or '(none)'}\n\n"
            f"Their work folder: {self.spec.agent_workdir(source)}{self._branch_note(source)}\n\n"
            f"Look at the work tree for their changes, then carry on. Asks sent to {source} that are still open"
            f" can be answered by you with post_reply only if they were also sent to you; otherwise tell the asker."
        )
        msg = await self.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="tell", recipients=[target], target=target,
            text=text[: self.spec.limits.message_bytes], urgent=True, origin="handoff",
        ))
        self.handed_off[source] = target
        await self.log(f"hand-off: {source} -> {target} ({reason})", origin="handoff")
        return {"from": source, "to": target, "message_id": msg.id}

    def _branch_note(self, agent: str) -> str:
        branch = self.spec.agent_branch(agent)
        return f" (their own git worktree, on branch {branch})" if branch else ""

    @checked
    async def op_rules(self, agent: str) -> dict[str, Any]:
        return {"rules": [
            {"name": r.name, "on": r.on, "agent": r.agent, "rounds": self.rules.states[r.name].rounds,
             "max_rounds": r.max_rounds, "open_ask": self.rules.states[r.name].open_ask,
             "last_fired": self.rules.states[r.name].last_fired or None, "cooldown_s": seconds(r.cooldown),
             "ask": r.ask, "handoff": r.handoff}
            for r in self.spec.rules
        ]}

    @checked
    async def op_asks(self, agent: str, limit: Int64 = 50) -> dict[str, Any]:
        if not 1 <= limit <= READ_LIMIT:
            raise OpError(wire.BAD_REQUEST, f"limit must be between 1 and {READ_LIMIT}")
        now = time.time()
        return {"asks": await self.store.open_asks(now, limit), "now": now}

    @checked
    async def op_reset_rule(self, agent: str, name: Name) -> dict[str, Any]:
        try:
            self.rules.reset(str(name))
        except KeyError as exc:
            raise OpError(wire.BAD_REQUEST, str(exc.args[0])) from None
        return {"name": name, "rounds": 0}

    # -- attention: answers --------------------------------------------------------------------------

    @checked
    async def op_approve(
        self, agent: str, name: Name, always: bool = False, request: Int64 | None = None
    ) -> dict[str, Any]:
        return await self._answer(name, "always" if always else "allow", "", request)

    @checked
    async def op_deny(self, agent: str, name: Name, reason: str = "", request: Int64 | None = None) -> dict[str, Any]:
        return await self._answer(name, "deny", reason[:4096], request)

    async def _answer(self, name: str, decision: wire.Decision, reason: str, request: int | None) -> dict[str, Any]:
        if name not in self.active():
            raise OpError(wire.UNKNOWN_AGENT, f"no agent {name!r} in pod {self.spec.name}")
        try:
            return await self.attention.answer(name, decision, USER, reason, request)
        except AnswerError as exc:
            raise OpError(exc.code, exc.message) from None

    @checked
    async def op_await_decision(
        self, agent: str, request: Int64, timeout_ms: Millis = 0, final: bool = False
    ) -> dict[str, Any]:
        """A permission hook waits for its answer (at most MAX_WAIT_MS a call)."""
        try:
            return await self.attention.await_decision(agent, request, min(float(timeout_ms), wire.MAX_WAIT_MS), final)
        except AnswerError as exc:
            raise OpError(exc.code, exc.message) from None

    # -- what the attention desk needs (AttentionHost) -------------------------------------------------

    def member_view(self, name: str) -> MemberView | None:
        member = self.members.get(name)
        if member is None or member.removed:
            return None
        return MemberView(member.cli, member.state, member.state_ts, member.last_activity, member.tools_ready)

    async def show_state(self, name: str, state: wire.AgentState) -> None:
        """The attention desk's view of an agent changed: show it, and wake it if it is idle and messages wait."""
        if name not in self.members:
            return
        await self._set_state(name, state)
        if state == "idle" and await self.store.pending_wakeworthy(name):
            self._maybe_wake(name)

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the rule engine needs (RuleHost) -----------------------------------------------------

    async def ask_record(self, ask_id: int) -> dict[str, Any] | None:
        return await self.store.ask(ask_id)

    async def last_said(self, agent: str) -> str:
        return await self.store.last_said(agent)

    async def rule_records(self) -> dict[str, RuleRecord]:
        return await self.store.rule_states()

    async def save_rule(self, name: str, record: RuleRecord) -> None:
        await self.store.save_rule_state(name, record)

    async def forget_rules(self, keep: list[str]) -> None:
        await self.store.forget_rules(keep)

    async def read_pane(self, agent: str) -> str:
        return await self.ports.read_pane(self.spec.name, agent)

    async def nudge(self, agent: str) -> str:
        """The wake the Waker calls: the port types the agent's CLI's wake text into its pane."""
        member = self.members.get(agent)
        if member is None:
            return "skipped: no such agent"
        return await self.ports.nudge(self.spec.name, agent, member.cli)

    # -- background duties --------------------------------------------------------------------------

    async def record_wake(self, name: str, result: str) -> None:
        now = time.time()
        member = self.members.get(name)
        if member is not None:
            member.last_wake, member.last_wake_ts = result, now
        await self.store.record_wake(name, now, result)
        self.publish(wire.event("wake", {"name": name, "result": result, "ts": now}))

    async def send_overdue_notices(self) -> int:
        """Tell senders about messages no model has seen after `limits.undelivered_notice_s`."""
        limit_s = self.spec.limits.undelivered_notice_s
        overdue = await self.store.overdue(time.time() - limit_s)
        if not overdue:
            return 0
        await self.store.mark_noticed([(mid, rcpt) for mid, rcpt, _, _ in overdue], time.time())
        by_sender: dict[str, list[str]] = {}
        for mid, rcpt, sender, kind in overdue:
            if sender == wire.SYSTEM_SENDER or rcpt == USER:
                continue
            state = self.members[rcpt].state if rcpt in self.members else "removed"
            by_sender.setdefault(sender, []).append(f"your {kind} #{mid} to {rcpt} ({rcpt} is {state})")
        minutes = round(limit_s / 60, 1)
        for sender, lines in by_sender.items():
            if sender != USER and (sender not in self.members or self.members[sender].removed):
                continue
            await self._system_message(
                [sender], f"Not delivered after {minutes} min: no model has seen " + "; ".join(lines) + "."
            )
        return len(overdue)

    async def notices_loop(self) -> None:
        while True:
            interval = min(30.0, max(0.2, self.spec.limits.undelivered_notice_s / 4))
            await asyncio.sleep(interval)
            try:
                await self.send_overdue_notices()
            except Exception:
                log.exception("non-delivery notices failed")

