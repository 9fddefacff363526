"""The broker: a pod's members, who they are, and the one table of the operations they may call.

Transport-free: `Broker.handle(frame)` takes a decoded request frame and returns the response frame,
so the server only moves bytes; `Broker.invoke` runs an operation for an identity already proven
(an agent's MCP session). The work is in the parts, each behind a narrow host protocol that this
class fulfils: messaging.py (tell, ask, reply, read), replies.py (waiting for answers, deadlines),
delivery.py (hooks, tools, busy/idle, waking), owner_ops.py (the user's operations), usage_ops.py
(usage and budgets), site_ops.py (the bridge's operations). Every operation's contract is in wire.py.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podctl.pods.spec import PodSpec, RouteSpec
from pydantic import ValidationError

from . import wire
from .args import describe
from .attention import AttentionDesk
from .budget import Verdict
from .delivery import Delivery
from .members import Member
from .messaging import Messaging
from .needs import MemberView
from .optable import Access, OpError, OpResult, OpTable, declared
from .owner_ops import OwnerOps
from .paths import USER, PodPaths
from .ports import Ports
from .replies import Replies
from .rules import RuleEngine
from .site_ops import SiteOps
from .sites import Sites
from .store import NewMessage, RuleRecord, Store
from .usage_ops import UsageOps
from .usage_store import UsageStore
from .wake import WakePolicy

if TYPE_CHECKING:
    from .records import AgentState, AskStatus, HandedOff, Message, Route, SiteFields, Synced, UsageTotals

log = logging.getLogger("podctl.broker")

def _refusal(op: str, exc: Exception) -> OpError:
    """What an operation that raised `exc` answers: its own refusal, a bad argument, or an internal error."""
    if isinstance(exc, OpError):
        return exc
    if isinstance(exc, ValidationError):
        return OpError(wire.BAD_REQUEST, f"bad arguments for {op}: {describe(exc)}")
    if isinstance(exc, TypeError):
        return OpError(wire.BAD_REQUEST, f"bad arguments for {op}: {exc}")
    log.error("%s failed", op, exc_info=exc)
    return OpError(wire.INTERNAL, f"{op} failed inside the broker: {exc}")


PARTS = (Messaging, Replies, Delivery, OwnerOps, UsageOps, SiteOps)
"""The broker's parts: together they declare every operation (broker/optable.py)."""
OP_ACCESS: dict[str, Access] = declared(*PARTS)

__all__ = ["Broker", "Member", "OpError"]


class Broker:
    def __init__(
        self, spec: PodSpec, pod_file: Path | None, paths: PodPaths, store: Store, ports: Ports | None = None, *,
        site: str | None = None, wake: WakePolicy | None = None,
    ) -> None:
        """`wake`: how idle agents are woken (None: they are not, for a broker in a test of something else)."""
        self.ports = ports or Ports()
        self.spec = spec
        self.pod_file = pod_file
        self.paths = paths
        self.store = store
        self.usage = UsageStore(store)
        self.members: dict[str, Member] = {}
        self.tokens: dict[str, str] = {}
        self.routes: dict[str, RouteSpec] = {}
        self.subscribers: set[Callable[[dict[str, Any]], None]] = set()
        self.handed_off: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = time.time()
        self.site = site
        """The site this machine runs, in a pod across machines (None: the pod is this machine's alone)."""
        self.rules = RuleEngine(self)
        self.attention = AttentionDesk(self)
        self.messaging = Messaging(self)
        self.replies = Replies(self)
        self.delivery = Delivery(self, wake)
        self.owner = OwnerOps(self)
        self.usage_ops = UsageOps(self, self.usage)
        self.site_ops = SiteOps(self)
        self.ops = OpTable(
            self.messaging, self.replies, self.delivery, self.owner, self.usage_ops, self.site_ops,
            commit=self.messaging.commit,
        )

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
            self.replies.expire_at(ask_id, deadline)
        await self.attention.load()

    async def apply_spec(self, spec: PodSpec) -> Synced:
        self.spec = spec
        self.tokens[USER] = self.paths.issue_token(USER)
        self.site_ops.configure(spec)
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
                await self.delivery.gone(member)
        if self.sites is not None:
            self.sites.configure()
        self.routes = {r.name: r for r in spec.routes}
        await self.rules.configure()
        await self.usage_ops.save_pricing()
        await self.usage_ops.judge_budgets()
        await self._tell_roles(told)
        return {"added": added, "removed": removed, "changed": changed}

    async def _tell_roles(self, told: dict[str, str]) -> None:
        """An agent whose model was last told another role than the one it has now is told the new one,
        whether it changed while the pod ran or while it was down: a notice at its next turn (a new
        session's intro has it too)."""
        for name, agent in self.spec.agents.items():
            if name in told and told[name] != agent.role:
                await self.messaging.system_message(
                    [name], f"Your role in pod {self.spec.name} changed. Your role is now:\n{agent.role or '(none)'}"
                )
                await self.store.set_told_role(name, agent.role)

    async def close(self) -> None:
        """Stop the timers of asks' deadlines (they are taken up again from the store at the next start)
        and the waker."""
        await self.replies.close()
        await self.delivery.close()

    def active(self) -> list[str]:
        return [m.name for m in self.members.values() if not m.removed]

    def local(self) -> list[str]:
        """The active members that run here (all of them, but in a pod across machines)."""
        return [m.name for m in self.members.values() if not m.removed and not m.remote]

    # -- transport entry -----------------------------------------------------------------

    async def handle(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Answer one request frame: its identity proven by its token, then the operation (see `invoke`)."""
        req_id = frame.get("id")
        try:
            op, args = self._request(frame)
            agent = self._authenticate(frame.get("agent"), frame.get("token"))
            return wire.ok(req_id, await self.invoke(agent, op, args))
        except OpError as exc:
            return wire.error(req_id, exc.code, exc.message)

    @staticmethod
    def _request(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if frame.get("v") != wire.PROTOCOL_VERSION:
            raise OpError(
                wire.PROTOCOL_MISMATCH,
                f"client speaks protocol {frame.get('v')!r}, this broker speaks {wire.PROTOCOL_VERSION}:"
                " use the same podctl version for the broker and its clients (podctl down, then up)",
            )
        op = frame.get("op")
        args = frame.get("args") or {}
        if not isinstance(op, str) or not isinstance(args, dict):
            raise OpError(wire.BAD_REQUEST, "a request needs a string 'op' and an object 'args'")
        return op, args

    async def invoke(self, agent: str, op: str, args: dict[str, Any]) -> OpResult:
        """Run operation `op` for `agent`, whose identity is already proven; raises `OpError`."""
        found = self.ops.admit(op, agent)
        try:
            return await found.run(agent, **args)
        except Exception as exc:  # noqa: BLE001 - every failure is an answer; _refusal logs the unexpected
            raise _refusal(op, exc) from None

    def commits(self, frame: dict[str, Any]) -> bool:
        """Whether `frame` asks for a committing operation (`submit` may answer it without a task)."""
        op = frame.get("op")
        found = self.ops.ops.get(op) if isinstance(op, str) else None
        return found is not None and found.front is not None

    def submit(self, frame: dict[str, Any], agent: str, respond: Callable[[dict[str, Any]], None]) -> bool:
        """Run a committing operation (a tell, an ask) without a task of its own: check it and queue its
        message in the group commit now, answer (`respond`) from the commit's callback. False: the frame
        is no committing operation `agent` (authenticated by the caller) may call; `handle` answers it."""
        try:
            op, args = self._request(frame)
            found = self.ops.admit(op, agent)
        except OpError:
            return False
        if found.front is None:
            return False
        req_id = frame.get("id")
        try:
            work = found.front(agent, **args)
        except Exception as exc:  # noqa: BLE001 - every failure is an answer; _refusal logs the unexpected
            error = _refusal(op, exc)
            respond(wire.error(req_id, error.code, error.message))
            return True

        def committed(stored: NewMessage | None, failed: BaseException | None) -> None:
            try:
                if stored is None:
                    raise failed if isinstance(failed, Exception) else OpError(wire.INTERNAL, "the broker is stopping")
                result = work.answer(self.messaging.committed(stored))
            except Exception as exc:  # noqa: BLE001 - every failure is an answer; _refusal logs the unexpected
                error = _refusal(op, exc)
                respond(wire.error(req_id, error.code, error.message))
                return
            respond(wire.ok(req_id, result))

        self.store.submit(work.message, committed)
        return True

    async def invoke_member(self, agent: str, op: str, args: dict[str, Any]) -> OpResult:
        """`invoke` for an agent's MCP session, authenticated when it opened: refused once the agent
        has no identity in the pod any more (it was removed)."""
        if agent not in self.tokens and agent not in self.local():
            raise OpError(wire.AUTH, f"agent {agent!r} is no longer a member of pod {self.spec.name}")
        return await self.invoke(agent, op, args)

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

    def publish(self, frame: dict[str, Any]) -> None:
        for subscriber in list(self.subscribers):
            subscriber(frame)

    def background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def mcp_closed(self, agent: str) -> None:
        self.delivery.mcp_closed(agent)

    # -- what the parts need of each other (their host protocols) ------------------------------------

    async def commit(self, msg: NewMessage) -> NewMessage:
        return await self.messaging.commit(msg)

    async def system_message(self, recipients: list[str], text: str) -> NewMessage:
        return await self.messaging.system_message(recipients, text)

    async def mark_read(self, agent: str, ids: list[int]) -> None:
        await self.messaging.mark_read(agent, ids)

    async def mark_answered(self, agent: str, messages: list[Message]) -> None:
        await self.messaging.mark_answered(agent, messages)

    def delivered(self, agent: str, ids: list[int], state: str, ts: float) -> None:
        self.messaging.delivered(agent, ids, state, ts)

    def reply_recipients(self, ask: dict[str, Any], followup: bool) -> list[str]:
        return self.messaging.reply_recipients(ask, followup)

    def route_list(self) -> list[Route]:
        return self.messaging.route_list()

    def reply_arrived(self, ask_id: int) -> None:
        self.replies.arrived(ask_id)

    def expire_at(self, ask_id: int, deadline: float) -> None:
        self.replies.expire_at(ask_id, deadline)

    async def ask_status(self, ask: dict[str, Any]) -> AskStatus:
        return await self.replies.ask_status(ask)

    async def left_ask(self, name: str, ask_id: int) -> None:
        await self.replies.left_ask(name, ask_id)

    async def tell_expired(self, ask_id: int) -> None:
        await self.replies.tell_expired(ask_id)

    async def set_state(self, name: str, state: str, fresh: bool = False) -> None:
        await self.delivery.set_state(name, state, fresh)

    def member_view(self, name: str) -> MemberView | None:
        return self.delivery.member_view(name)

    async def show_state(self, name: str, state: AgentState) -> None:
        await self.delivery.show_state(name, state)

    def wakeable(self, name: str) -> bool:
        return self.delivery.wakeable(name)

    def maybe_wake(self, name: str) -> None:
        self.delivery.maybe_wake(name)

    def waking(self, name: str) -> bool:
        return self.delivery.waking(name)

    async def has_unread(self, name: str) -> bool:
        return bool(await self.store.pending_wakeworthy(name))

    async def send_overdue_notices(self) -> int:
        return await self.delivery.send_overdue_notices()

    async def log(self, text: str, level: str = "info", origin: str | None = None) -> int | None:
        return await self.owner.log(text, level, origin)

    async def handoff(self, source: str, target: str, reason: str) -> HandedOff:
        return await self.owner.handoff(source, target, reason)

    @property
    def verdict(self) -> Verdict | None:
        return self.usage_ops.verdict

    def usage_of(self, name: str) -> UsageTotals | None:
        return self.usage_ops.usage_of(name)

    def over_budget(self, name: str) -> str | None:
        return self.usage_ops.over_budget(name)

    def budget_limits(self) -> dict[str, Any]:
        return self.usage_ops.budget_limits()

    async def judge_budgets(self, changed: set[str] | None = None) -> None:
        await self.usage_ops.judge_budgets(changed)

    @property
    def sites(self) -> Sites | None:
        return self.site_ops.sites

    def site_of(self, name: str) -> SiteFields:
        return self.site_ops.site_of(name)

    def site_fields(self, member: Member) -> SiteFields:
        return self.site_ops.site_fields(member)

    def gathered_elsewhere(self, ask: dict[str, Any]) -> bool:
        return self.site_ops.gathered_elsewhere(ask)

    async def local_usage(self) -> list[tuple[str, str, list[int]]]:
        return await self.site_ops.local_usage()

    def remote_usage(self) -> list[tuple[str, str, list[int]]]:
        return self.site_ops.remote_usage()

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
