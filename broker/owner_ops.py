"""The pod owner's operations (the `user` identity: the CLI, the live view, the supervisor).

Status, history and the transcript, applying a new desired state, hand-offs, rules, and answering
an agent's permission request. The part knows the rest of the broker only through `OwnerHost`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from podctl.pods.durations import seconds
from podctl.pods.errors import PodctlError
from podctl.pods.transfer import from_wire
from pydantic import Field

from . import wire
from .args import READ_LIMIT, Cursor, Int64, Level, Name, Seconds
from .needs import AnswerError
from .optable import OpError, op
from .paths import USER
from .queries import status_row
from .records import (
    AgentStatus,
    Answered,
    Decision,
    HandedOff,
    Logged,
    MessagePage,
    OpenAsks,
    Pruned,
    Route,
    RuleReset,
    Rules,
    SiteFields,
    StateSet,
    Status,
    Subscribed,
    Synced,
    UsageTotals,
)
from .store import NewMessage

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .attention import AttentionDesk
    from .budget import Verdict
    from .members import Member
    from .rules import RuleEngine
    from .sites import Sites
    from .store import Store

log = logging.getLogger("podctl.broker")


class OwnerHost(Protocol):
    """What the owner's operations need of the broker, and nothing more."""

    spec: PodSpec
    pod_file: Path | None
    store: Store
    members: dict[str, Member]
    handed_off: dict[str, str]
    rules: RuleEngine
    attention: AttentionDesk
    started: float

    @property
    def verdict(self) -> Verdict | None: ...
    @property
    def sites(self) -> Sites | None: ...

    def active(self) -> list[str]: ...
    def route_list(self) -> list[Route]: ...
    def maybe_wake(self, name: str) -> None: ...
    def waking(self, name: str) -> bool: ...
    def usage_of(self, name: str) -> UsageTotals | None: ...
    def over_budget(self, name: str) -> str | None: ...
    def budget_limits(self) -> dict[str, Any]: ...
    def site_fields(self, member: Member) -> SiteFields: ...
    async def set_state(self, name: str, state: str, fresh: bool = False) -> None: ...
    async def commit(self, msg: NewMessage) -> NewMessage: ...
    async def apply_spec(self, spec: PodSpec) -> Synced: ...


class OwnerOps:
    def __init__(self, host: OwnerHost) -> None:
        self.host = host

    @op("user")
    async def op_set_state(self, agent: str, name: Name, state: str) -> StateSet:
        host = self.host
        if name not in host.members or host.members[name].removed:
            raise OpError(wire.UNKNOWN_AGENT, f"no agent {name!r} in pod {host.spec.name}")
        if host.members[name].remote:
            raise OpError(wire.FORBIDDEN, f"agent {name} runs at site {host.members[name].site}: its state is that site's")
        if state not in wire.AGENT_STATES:
            raise OpError(wire.BAD_REQUEST, f"state must be one of {', '.join(wire.AGENT_STATES)}")
        await host.attention.restarted(name, state)
        await host.set_state(name, state, fresh=True)
        if state == "idle" and await host.store.pending_wakeworthy(name):
            host.maybe_wake(name)
        return {"name": name, "state": state}

    @op("user")
    async def op_subscribe(self, agent: str, since: Cursor = 0) -> Subscribed:
        """Checked here; server.py then streams the events on the connection."""
        return {"subscribed": True}

    @op("user")
    async def op_history(self, agent: str, since: Cursor = 0, limit: Int64 = 200) -> MessagePage:
        if not 1 <= limit <= 5000:
            raise OpError(wire.BAD_REQUEST, "limit must be between 1 and 5000")
        store = self.host.store
        found = await store.history(since, limit)
        messages = found.messages
        deliveries = await store.deliveries_of([m["id"] for m in messages])
        for m in messages:
            m["delivery"] = deliveries.get(m["id"], [])
        return {"messages": messages, "next": messages[-1]["id"] if messages else since, "more": found.more}

    @op("user")
    async def op_status(self, agent: str) -> Status:
        host = self.host
        stored = await host.store.overview()
        unseen = stored["unseen"]
        status: Status = {
            "pod": host.spec.name,
            "pod_file": str(host.pod_file) if host.pod_file else None,
            "last_message_id": stored["last_message_id"],
            "broker_pid": os.getpid(),
            "started": host.started,
            "agents": [
                self.status_row(m, unseen.get(m.name, 0))
                for m in host.members.values() if not m.removed or m.leaving
            ],
            "routes": host.route_list(),
            "pending_deliveries": unseen,
            "usage": host.verdict.pod.as_json() if host.verdict else None,
            "budget": host.budget_limits(),
        }
        if host.sites is not None:
            status["sites"] = host.sites.status()
        return status

    def status_row(self, m: Member, unread: int) -> AgentStatus:
        """One agent's row of `status`."""
        host = self.host
        more: dict[str, Any] = {
            "last_activity": m.last_activity, "handed_off_to": host.handed_off.get(m.name), "waking": host.waking(m.name),
            "usage": host.usage_of(m.name), "over_budget": host.over_budget(m.name),
            **host.attention.status_fields(m.name), **({"leaving": True} if m.leaving else {}),
            **({"starting": True} if m.starting else {}),
        }
        site = host.site_fields(m)
        more.update(site)
        unread = more.pop("unread", unread)  # an agent of another site: as its site reported it
        return status_row(
            m.name, m.cli, m.role, m.state, m.state_ts, unread=unread, last_wake=m.last_wake,
            last_wake_ts=m.last_wake_ts, tools_ready=m.tools_ready, **more,
        )

    @op("user")
    async def op_sync(self, agent: str, spec: dict[str, Any], source: str) -> Synced:
        """Take the desired state the applier just applied (never a file the broker reads itself)."""
        try:
            new = from_wire(spec, source)
        except PodctlError as exc:
            raise OpError(wire.BAD_REQUEST, str(exc)) from None
        if new.name != self.host.spec.name:
            raise OpError(wire.BAD_REQUEST, f"this broker serves pod {self.host.spec.name}, not {new.name}")
        self.host.pod_file = new.source
        return await self.host.apply_spec(new)

    @op("user")
    async def op_prune(self, agent: str, older_than_s: Seconds | None = None) -> Pruned:
        if older_than_s is None:
            days = self.host.spec.limits.retention_days
            if days is None:
                raise OpError(
                    wire.BAD_REQUEST,
                    "no retention set: pass --older-than, or set limits.retention_days in the pod file",
                )
            older_than_s = days * 86400
        return {"deleted": await self.host.store.prune(time.time() - older_than_s)}

    @op("user")
    async def op_log(self, agent: str, text: str, level: Level = "info") -> Logged:
        if not text:
            raise OpError(wire.EMPTY_TEXT, "nothing to log")
        return {"message_id": await self.log(text, str(level))}

    async def log(self, text: str, level: str = "info", origin: str | None = None) -> int | None:
        """A line in the pod's transcript (kind "log", from podctl, to nobody) and its log file."""
        log.log(logging.WARNING if level in ("warning", "error") else logging.INFO, "%s", text)
        msg = await self.host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="log", recipients=[], target=level, text=text[:65536], origin=origin,
        ))
        return msg.id

    @op("user")
    async def op_handoff(
        self, agent: str, source: Annotated[Name, Field(alias="from")], to: Name, reason: str = "asked by the user"
    ) -> HandedOff:
        target = to
        for name in (source, target):
            if name not in self.host.active():
                raise OpError(wire.UNKNOWN_AGENT, f"no agent {name!r} in pod {self.host.spec.name}")
        if source == target:
            raise OpError(wire.BAD_REQUEST, "hand-off needs two different agents")
        return await self.handoff(source, target, reason=reason or "asked by the user")

    async def handoff(self, source: str, target: str, reason: str) -> HandedOff:
        """Give `target` what it needs to take over `source`'s thread, wake it, mark `source`."""
        host = self.host
        recent = await host.store.conversation_of(source, 20)
        task = next((m for m in reversed(recent) if m["from"] == USER), None)
        digest = "\n".join(f"- #{m['id']} {m['from']} -> {','.join(m['to'])} ({m['kind']}): {m['text'][:400]}" for m in recent)
        branch = host.spec.agent_branch(source)
        branch_note = f" (their own git worktree, on branch {branch})" if branch else ""
        text = (
            f"HAND-OFF: you take over the work of {source} ({host.members[source].cli}) in pod {host.spec.name}"
            f" ({reason}).\n\nTheir role:\n{host.members[source].role or '(none)'}\n\n"
            f"Task in progress:\n{task['text'] if task else '(no task from the user on record)'}\n\n"
            f"Recent conversation of {source}:\n{digest or '(none)'}\n\n"
            f"Their work folder: {host.spec.agent_workdir(source)}{branch_note}\n\n"
            f"Look at the work tree for their changes, then carry on. Asks sent to {source} that are still open"
            f" can be answered by you with post_reply only if they were also sent to you; otherwise tell the asker."
        )
        msg = await host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="tell", recipients=[target], target=target,
            text=text[: host.spec.limits.message_bytes], urgent=True, origin="handoff",
        ))
        host.handed_off[source] = target
        await self.log(f"hand-off: {source} -> {target} ({reason})", origin="handoff")
        assert msg.id is not None
        return {"from": source, "to": target, "message_id": msg.id}

    @op("user")
    async def op_rules(self, agent: str) -> Rules:
        states = self.host.rules.states
        return {"rules": [
            {"name": r.name, "on": r.on, "agent": r.agent, "rounds": states[r.name].rounds,
             "max_rounds": r.max_rounds, "open_ask": states[r.name].open_ask,
             "last_fired": states[r.name].last_fired or None, "cooldown_s": seconds(r.cooldown),
             "ask": r.ask, "handoff": r.handoff}
            for r in self.host.spec.rules
        ]}

    @op("user")
    async def op_asks(self, agent: str, limit: Int64 = 50) -> OpenAsks:
        if not 1 <= limit <= READ_LIMIT:
            raise OpError(wire.BAD_REQUEST, f"limit must be between 1 and {READ_LIMIT}")
        now = time.time()
        return {"asks": await self.host.store.open_asks(now, limit), "now": now}

    @op("user")
    async def op_reset_rule(self, agent: str, name: Name) -> RuleReset:
        try:
            self.host.rules.reset(str(name))
        except KeyError as exc:
            raise OpError(wire.BAD_REQUEST, str(exc.args[0])) from None
        return {"name": name, "rounds": 0}

    # -- answering a permission request -----------------------------------------------------------

    @op("user")
    async def op_approve(self, agent: str, name: Name, always: bool = False, request: Int64 | None = None) -> Answered:
        return await self._answer(name, "always" if always else "allow", "", request)

    @op("user")
    async def op_deny(self, agent: str, name: Name, reason: str = "", request: Int64 | None = None) -> Answered:
        return await self._answer(name, "deny", reason[:4096], request)

    async def _answer(self, name: str, decision: Decision, reason: str, request: int | None) -> Answered:
        if name not in self.host.active():
            raise OpError(wire.UNKNOWN_AGENT, f"no agent {name!r} in pod {self.host.spec.name}")
        try:
            return await self.host.attention.answer(name, decision, USER, reason, request)
        except AnswerError as exc:
            raise OpError(exc.code, exc.message) from None
