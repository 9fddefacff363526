"""Messages between members: tell, ask, reply, read, and who is in the pod.

Every message the broker stores goes through `Messaging.commit` (one transaction: the message, its
deliveries, and in a pod across machines its outbox row), which then tells subscribers, the rule
engine and the waker. The part knows the rest of the broker only through `MessagingHost`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast

from podctl.pods.durations import seconds
from podctl.pods.errors import PodctlError

from . import wire
from .args import READ_LIMIT, AskId, ClientMsgId, Cursor, Int64, Recipients
from .members import Member
from .optable import Commit, OpError, committing, op
from .paths import USER
from .records import (
    Agents,
    Asked,
    Message,
    MessagePage,
    Recipient,
    Replied,
    Route,
    SiteFields,
    TeamMember,
    Told,
    Where,
)
from .store import NewMessage

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec, RouteSpec

    from .attention import AttentionDesk
    from .rules import RuleEngine
    from .store import Store



class MessagingHost(Protocol):
    """What messaging needs of the broker, and nothing more."""

    spec: PodSpec
    store: Store
    members: dict[str, Member]
    routes: dict[str, RouteSpec]
    rules: RuleEngine
    attention: AttentionDesk
    subscribers: set[Callable[[dict[str, Any]], None]]

    def active(self) -> list[str]: ...
    def publish(self, frame: dict[str, Any]) -> None: ...
    def maybe_wake(self, name: str) -> None: ...
    def over_budget(self, name: str) -> str | None: ...
    def site_of(self, name: str) -> SiteFields: ...
    def site_fields(self, member: Member) -> SiteFields: ...
    def gathered_elsewhere(self, ask: dict[str, Any]) -> bool: ...
    def reply_arrived(self, ask_id: int) -> None: ...
    def expire_at(self, ask_id: int, deadline: float) -> None: ...
    def background(self, work: Coroutine[Any, Any, Any]) -> None: ...


class Messaging:
    def __init__(self, host: MessagingHost) -> None:
        self.host = host

    # -- checks ---------------------------------------------------------------------------------

    def check_text(self, text: Any) -> str:
        if not isinstance(text, str) or not text.strip():
            raise OpError(wire.EMPTY_TEXT, "the message text is empty: say something")
        size = len(text.encode("utf-8"))
        limit = self.host.spec.limits.message_bytes
        if size > limit:
            raise OpError(
                wire.TOO_LARGE,
                f"the message is {size} bytes; this pod's limit is {limit} (limits.message_bytes in the pod file):"
                " shorten it or point to a file",
            )
        return text

    def resolve(self, sender: str, to: Any) -> tuple[list[str], str, RouteSpec | None]:
        """Recipients of `to` (a name, a list of names, `all`, or a route name)."""
        host = self.host
        if isinstance(to, str):
            names, target = [to], to
        elif isinstance(to, list) and to and all(isinstance(n, str) for n in to):
            names, target = to, ",".join(to)
        else:
            raise OpError(wire.BAD_REQUEST, "'to' must be an agent name, a list of names, or \"all\"")
        if isinstance(to, str) and to in host.routes:
            route = host.routes[to]
            if route.from_ is not None and sender not in route.from_ and sender != USER:
                raise OpError(wire.FORBIDDEN, f"route {to!r} is for {', '.join(route.from_)} only")
            return [n for n in route.to if n != sender], to, route
        members = host.members
        out: list[str] = []
        for name in names:
            if name == "all":
                out.extend(n for n in host.active() if n != sender)
            elif (name in members and not members[name].removed) or name == USER:
                out.append(name)
            elif name in members:
                raise OpError(wire.UNKNOWN_AGENT, f"agent {name!r} was removed from pod {host.spec.name}")
            else:
                known = ", ".join(sorted([*host.active(), *host.routes]))
                raise OpError(wire.UNKNOWN_AGENT, f"no agent or route {name!r} in pod {host.spec.name} (known: {known})")
        out = list(dict.fromkeys(out))
        if not out:
            raise OpError(wire.UNKNOWN_AGENT, "nobody to send to: the pod has no other agent")
        return out, target, None

    def recipient_states(self, names: list[str]) -> list[Recipient]:
        """Each recipient's state; one over budget says so (its message waits until the budget is raised)."""
        out = []
        for n in names:
            state = "human" if n == USER else self.host.members[n].state
            entry = cast("Recipient", {"name": n, "state": state, **self.host.site_of(n)})  # the site's fields typed apart
            reason = self.host.over_budget(n) if n != USER else None
            if reason:
                entry["over_budget"] = f"{reason}: not woken until the budget is raised"
            out.append(entry)
        return out

    # -- the one way a message is stored ----------------------------------------------------------

    async def commit(self, msg: NewMessage) -> NewMessage:
        return self.committed(await self.host.store.commit_message(msg))

    def committed(self, msg: NewMessage) -> NewMessage:
        """A message the store just committed (or found: a retry): a reused client_msg_id is refused;
        a new message is told to subscribers, the rule engine and the waker."""
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
        host = self.host
        sender = host.members.get(msg.sender)
        if sender is not None:
            sender.last_activity = msg.ts
        if host.subscribers:
            host.publish(wire.event("message", msg.as_dict()))
        host.rules.on_message(msg)
        if msg.kind == "reply" and msg.ask_id is not None:
            host.reply_arrived(msg.ask_id)
        if msg.wakes():
            for name in msg.recipients:
                host.maybe_wake(name)
        if msg.kind == "reply" and msg.ask_id is not None and host.attention.is_approval(msg.ask_id):
            host.background(host.attention.on_reply(msg.ask_id, msg.sender, msg.text))

    async def system_message(self, recipients: list[str], text: str, kind: str = "notice") -> NewMessage:
        return await self.commit(NewMessage(sender=wire.SYSTEM_SENDER, kind=kind, recipients=recipients, text=text))

    # -- operations --------------------------------------------------------------------------------

    @committing()
    def op_tell(
        self, agent: str, to: Recipients, text: str, urgent: bool = False, client_msg_id: ClientMsgId | None = None
    ) -> Commit:
        text = self.check_text(text)
        recipients, target, _ = self.resolve(agent, to)
        msg = NewMessage(
            sender=agent, kind="tell", recipients=recipients, target=target, text=text,
            urgent=bool(urgent), client_msg_id=client_msg_id,
        )
        def answer(stored: NewMessage) -> Told:
            assert stored.id is not None
            return {"message_id": stored.id, "status": "queued", "recipients": self.recipient_states(recipients)}

        return Commit(msg, answer)

    @committing()
    def op_ask(self, agent: str, to: Recipients, text: str, client_msg_id: ClientMsgId | None = None) -> Commit:
        text = self.check_text(text)
        recipients, target, route = self.resolve(agent, to)
        if agent in recipients:
            raise OpError(wire.BAD_REQUEST, "you cannot ask yourself")
        deadline = time.time() + seconds(route.timeout) if route is not None else None
        msg = NewMessage(
            sender=agent, kind="ask", recipients=recipients, target=target, text=text,
            client_msg_id=client_msg_id, ask_mode=route.mode if route else "all",
            ask_route=route.name if route else None, ask_deadline=deadline,
        )

        def answer(stored: NewMessage) -> Asked:
            assert stored.id is not None and stored.ask_id is not None
            if deadline is not None and not stored.duplicate:
                self.host.expire_at(stored.ask_id, deadline)
            return {
                "ask_id": stored.ask_id, "message_id": stored.id, "status": "queued",
                "recipients": self.recipient_states(recipients), "mode": route.mode if route else "all",
            }

        return Commit(msg, answer)

    async def mark_read(self, agent: str, ids: list[int]) -> None:
        now = time.time()
        self.delivered(agent, await self.host.store.mark_read(agent, ids, now), "read", now)

    def delivered(self, agent: str, ids: list[int], state: str, ts: float) -> None:
        """Tell subscribers (the live view) that messages reached a model (injected) or were read."""
        if ids:
            self.host.publish(wire.event("delivery", {"to": agent, "ids": ids, "state": state, "ts": ts}))

    @op()
    async def op_read_messages(self, agent: str, since: Cursor | None = None, limit: Int64 = 100) -> MessagePage:
        if not 1 <= limit <= READ_LIMIT:
            raise OpError(wire.BAD_REQUEST, f"limit must be between 1 and {READ_LIMIT}")
        store = self.host.store
        if since is None:
            now = time.time()
            found, marked = await store.take_unseen(agent, limit, now)
            await self.mark_answered(agent, found.messages)
            self.delivered(agent, marked, "read", now)
        else:
            found = await store.inbox(agent, since, limit)
            await self.mark_answered(agent, found.messages)
            await self.mark_read(agent, [m["id"] for m in found.messages])
        messages = found.messages
        cursor = messages[-1]["id"] if messages else (since or 0)
        return {"messages": messages, "next": cursor, "more": found.more}

    @op()
    async def op_post_reply(
        self, agent: str, ask_id: AskId, text: str, client_msg_id: ClientMsgId | None = None
    ) -> Replied:
        text = self.check_text(text)
        if isinstance(ask_id, str) and ask_id.isdigit():
            ask_id = int(ask_id)
        ask = await self.host.store.ask(ask_id) if isinstance(ask_id, int) and not isinstance(ask_id, bool) else None
        if ask is None:
            raise OpError(wire.UNKNOWN_ASK, f"no ask with ask_id {ask_id!r} in pod {self.host.spec.name}")
        if agent not in ask["targets"]:
            raise OpError(wire.NOT_ASKED, f"ask {ask_id} was not sent to {agent}; only its recipients can reply")
        followup = ask["targets"][agent] is not None
        recipients = self.reply_recipients(ask, followup)
        msg = await self.commit(NewMessage(
            sender=agent, kind="reply", recipients=recipients, target=recipients[0] if recipients else ask["asker"],
            text=text, ask_id=ask["id"], followup=followup, client_msg_id=client_msg_id,
            reply_to=None if followup else (ask["id"], agent),
        ))
        assert msg.id is not None
        out: Replied = {
            "message_id": msg.id, "ask_id": ask["id"], "followup": followup, "status": "queued", "to": recipients,
        }
        if followup:
            await self._followup_note(out, agent, ask["id"], recipients)
        return out

    def reply_recipients(self, ask: dict[str, Any], followup: bool) -> list[str]:
        """Who a reply goes to: the asker; for a rule's ask, nobody while the rule gathers its answers
        (it sends them on together), else the agent the rule asked for (a late answer, a follow-up)."""
        if ask["asker"] != wire.SYSTEM_SENDER:
            return [ask["asker"]]
        if not followup and (self.host.rules.gathering(ask["id"]) or self.host.gathered_elsewhere(ask)):
            return []
        behalf = ask["behalf"]
        return [behalf] if behalf in self.host.active() else []

    async def _followup_note(self, out: Replied, agent: str, ask_id: int, recipients: list[str]) -> None:
        """A reply to an ask the agent already answered is a follow-up: say so, and name the asks to it
        that are still open (it may have meant one of them: models copy the first ask_id they see)."""
        sent = f"sent to {', '.join(recipients)} as a follow-up" if recipients else "kept in the transcript"
        note = f"You had already answered ask #{ask_id}: this reply was {sent}; it does not answer another ask."
        still = [(i, a) for i, a in await self.host.store.open_asks_to(agent, time.time(), 10) if i != ask_id]
        if still:
            listed = ", ".join(f"ask #{i} from {a}" for i, a in still)
            note += f" Still open and waiting for your answer: {listed}. Answer with post_reply(ask_id={still[0][0]}, text=...)."
            out["open_asks"] = [{"ask_id": i, "from": a} for i, a in still]
        out["note"] = note

    async def mark_answered(self, agent: str, messages: list[Message]) -> None:
        """Each ask to `agent` among `messages` says whether it already answered it (`answered`): a model
        copying the first ask_id it sees would otherwise reply to an answered ask."""
        asks = [m for m in messages if m["kind"] == "ask" and agent in m["to"]]
        if not asks:
            return
        answered = await self.host.store.answered_by(agent, [m["ask_id"] for m in asks if m["ask_id"] is not None])
        for m in asks:
            m["answered"] = m["ask_id"] in answered

    @op()
    async def op_list_agents(self, agent: str) -> Agents:
        host = self.host
        unread = await host.store.unread_counts()
        agents = []
        for m in host.members.values():
            if m.removed:
                continue
            agents.append(cast("TeamMember", {  # the worktree's and the site's fields are typed apart
                "name": m.name, "cli": m.cli, "role": m.role, "state": m.state, "unread": unread.get(m.name, 0),
                "you": m.name == agent, **self._where(m.name), **host.site_fields(m),
            }))
        return {"pod": host.spec.name, "agents": agents, "routes": self.route_list()}

    def _where(self, name: str) -> Where:
        """The folder an agent works in (and its worktree's branch): where a reviewer finds its files."""
        host = self.host
        if name not in host.spec.agents or (name in host.members and host.members[name].remote):
            return {}
        try:
            return {"workdir": str(host.spec.agent_workdir(name)), "branch": host.spec.agent_branch(name)}
        except PodctlError:
            return {}

    def route_list(self) -> list[Route]:
        return [
            {"name": r.name, "to": list(r.to), "mode": r.mode, "timeout": r.timeout,
             "from": list(r.from_) if r.from_ is not None else None}
            for r in self.host.routes.values()
        ]
