"""A pod across machines, the broker's side (docs/sites.md): remote members, the outbox and inbound commits.

Each site keeps its own broker and store; its bridge (orchestrator/bridge.py, a client of this broker
as the identity `BRIDGE`) carries only what crosses sites, over NATS JetStream. What the broker does:

- a message committed here for an agent of another site gets an outbox row per site in the message's own
  transaction (`after`, a store hook); `pull` hands the bridge what is due and `sent` marks it once
  JetStream acknowledged the publish, so a crash anywhere only sends it again;
- a message from another site is committed here once per (origin site, origin id) (`before` finds a
  duplicate by the unique key of `site_imports`) before the bridge acknowledges it to JetStream;
- what a recipient here does with such a message (queued, injected, read) is a receipt owed to its
  site: rows of `site_receipts`, raised by a trigger in the very transaction that changed the delivery;
- each site reports its members' states (and its usage, for the pod's budgets): the others show them
  with the age of the report.

References to messages cross sites as (site, id at that site); each site translates them to its own ids.
A site is trusted only for itself: a message must come on its own site's subject (the bridge hands the
subject's site along), from one of its agents (or its user, or podctl's rules), and a reply only from
an agent the ask was sent to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from . import wire
from .envelopes import (
    ENVELOPE,
    ENVELOPE_VERSION,
    LATER_ATTEMPTS,
    PULL_BYTES,
    AskIn,
    Later,
    MessageEnvelope,
    ReceiptEnvelope,
    Refused,
    StateEnvelope,
)
from .paths import USER
from .site_store import SiteStoreHook
from .store import NewMessage, Store

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .members import Member
    from .records import BridgeDue, SiteFields

log = logging.getLogger("podctl.broker.sites")

class SitesHost(Protocol):
    """What the sites need of the broker, and nothing more."""

    spec: PodSpec
    store: Store
    members: dict[str, Member]
    subscribers: set[Any]

    def publish(self, frame: dict[str, Any]) -> None: ...
    async def commit(self, msg: NewMessage) -> NewMessage: ...
    async def ask_record(self, ask_id: int) -> dict[str, Any] | None: ...
    def reply_recipients(self, ask: dict[str, Any], followup: bool) -> list[str]: ...
    async def judge_budgets(self, changed: set[str] | None = None) -> None: ...
    async def local_usage(self) -> list[tuple[str, str, list[int]]]: ...


class Sites:
    """This broker's view of the pod's other sites; `here` is the site this machine runs."""

    def __init__(self, host: SitesHost, here: str) -> None:
        self.host = host
        self.here = here
        self.changed = asyncio.Event()
        """Something may be due for the bridge (a message, a receipt, a state)."""
        self.state_due = True
        self.reports: dict[str, float] = {}
        """When each other site's last state report arrived (this machine's clock)."""
        self.remote_usage: dict[str, list[tuple[str, str, list[int]]]] = {}
        self.refused: dict[str, int] = {}
        self.link: dict[str, Any] = {"up": False, "since": None, "detail": "the bridge has not connected yet"}
        host.subscribers.add(self._on_event)
        self.store_hook = SiteStoreHook(self)
        """What it writes in each batch of messages' own transaction."""

    # -- membership -----------------------------------------------------------------------------

    @property
    def spec(self) -> PodSpec:
        return self.host.spec

    def site_of(self, name: str) -> str | None:
        return self.spec.site_of(name)

    def remote(self, name: str) -> bool:
        site = self.site_of(name)
        return site is not None and site != self.here

    def local_names(self) -> set[str]:
        return set(self.spec.local_agents(self.here))

    def configure(self) -> None:
        """Mark each member with its site (after the broker applied a spec)."""
        for name, member in self.host.members.items():
            member.site = self.site_of(name)
            remote = self.remote(name)
            if remote and not member.remote and member.reported_at is None:
                member.state, member.state_ts, member.tools_ready = "unknown", 0.0, False
            member.remote = remote
        self.state_due = True
        self.changed.set()

    def member_fields(self, member: Member) -> SiteFields:
        """What `status` and `list_agents` add about a member's site."""
        if member.site is None:
            return {}
        if not member.remote:
            return {"site": member.site}
        return {"site": member.site, "remote": True, "reported_at": member.reported_at, "unread": member.unread}

    def status(self) -> dict[str, Any]:
        """The pod's sites as this one sees them: each with its last report and what was refused from it."""
        sites = []
        for site in self.spec.sites():
            entry: dict[str, Any] = {"name": site, "here": site == self.here}
            if site != self.here:
                entry["reported_at"] = self.reports.get(site)
                entry["refused"] = self.refused.get(site, 0)
            sites.append(entry)
        return {"here": self.here, "link": self.link, "sites": sites}

    def _on_event(self, frame: dict[str, Any]) -> None:
        """Wake the bridge's pull: a committed message, a delivery, a change of a local member."""
        kind, data = frame.get("event"), frame.get("data") or {}
        if kind in ("state", "tools", "usage") and data.get("name") in self.local_names():
            self.state_due = True
        self.changed.set()

    # -- what the bridge publishes ----------------------------------------------------------------

    async def pull(self, limit: int, timeout_s: float) -> BridgeDue:
        """What is due for the other sites, at once if anything is, else once something is (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.changed.clear()
            messages = await self._due_messages(limit)
            receipts = await self._due_receipts(max(1, limit - len(messages)))
            state = await self.report() if self.state_due else None
            self.state_due = False
            remaining = deadline - time.monotonic()
            if messages or receipts or state is not None or remaining <= 0:
                return {"messages": messages, "receipts": receipts, "state": state}
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)
            except TimeoutError:
                pass

    async def _due_messages(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT o.message_id, o.site, m.ts, m.sender, m.kind, m.recipients, m.text, m.ask_id, m.urgent, m.followup,"
            " m.target, m.origin, a.mode, a.route, a.deadline, a.behalf, i.origin_site, i.origin_id"
            " FROM site_outbox o JOIN messages m ON m.id = o.message_id LEFT JOIN asks a ON a.id = m.id"
            " LEFT JOIN site_imports i ON i.local_id = m.ask_id"
            " WHERE o.sent_at IS NULL ORDER BY o.message_id, o.site LIMIT ?",
            (limit,),
        )
        out: list[dict[str, Any]] = []
        size = 0
        for r in rows:
            message = {"id": r[0], "ts": r[2], "from": r[3], "kind": r[4], "to": json.loads(r[5]), "text": r[6],
                       "target": r[10], "urgent": bool(r[8]), "followup": bool(r[9]), "origin": r[11]}
            envelope: dict[str, Any] = {"v": ENVELOPE_VERSION, "kind": "msg", "site": self.here, "message": message}
            if r[4] == "ask":
                envelope["ask"] = {"mode": r[12] or "all", "route": r[13], "deadline": r[14], "behalf": r[15]}
            if r[7] is not None:
                envelope["ask_ref"] = [r[16], r[17]] if r[16] is not None else [self.here, r[7]]
            size += len(r[6].encode("utf-8")) + 512
            if out and size > PULL_BYTES:
                break
            out.append({"id": r[0], "site": r[1], "msg_id": f"{self.here}:m:{r[0]}:{r[1]}", "envelope": envelope})
        return out

    async def _due_receipts(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT r.message_id, r.recipient, r.rank, i.origin_site, i.origin_id, d.queued_at, d.injected_at, d.read_at"
            " FROM site_receipts r JOIN site_imports i ON i.local_id = r.message_id"
            " JOIN deliveries d ON d.message_id = r.message_id AND d.recipient = r.recipient"
            " WHERE r.rank > r.sent_rank ORDER BY r.message_id LIMIT ?",
            (limit,),
        )
        return [
            {"id": r[0], "to": r[1], "rank": r[2], "site": r[3], "msg_id": f"{self.here}:r:{r[3]}:{r[4]}:{r[1]}:{r[2]}",
             "envelope": {"v": ENVELOPE_VERSION, "kind": "rcpt", "site": self.here, "ref": [r[3], r[4]], "to": r[1],
                          "queued_at": r[5], "injected_at": r[6], "read_at": r[7]}}
            for r in rows
        ]

    async def sent(
        self, messages: list[tuple[int, str]], receipts: list[tuple[int, str, int]], failed: list[tuple[int, str, str]]
    ) -> int:
        """The bridge's publishes that JetStream acknowledged (and those it can never publish, with why)."""
        now = time.time()
        async with self.host.store.transaction() as conn:
            await conn.executemany(
                "UPDATE site_outbox SET sent_at=? WHERE message_id=? AND site=? AND sent_at IS NULL",
                [(now, mid, site) for mid, site in messages],
            )
            await conn.executemany(
                "UPDATE site_receipts SET sent_rank=max(sent_rank, ?) WHERE message_id=? AND recipient=?",
                [(rank, mid, to) for mid, to, rank in receipts],
            )
            await conn.executemany(
                "UPDATE site_outbox SET sent_at=?, error=? WHERE message_id=? AND site=? AND sent_at IS NULL",
                [(now, why, mid, site) for mid, site, why in failed],
            )
        for mid, site, why in failed:
            await self._tell_failed(mid, site, why)
        return len(messages) + len(receipts) + len(failed)

    async def _tell_failed(self, message_id: int, site: str, why: str) -> None:
        rows = await self._fetch("SELECT sender, kind FROM messages WHERE id=?", (message_id,))
        if not rows or rows[0][0] == wire.SYSTEM_SENDER:
            return
        sender, kind = str(rows[0][0]), str(rows[0][1])
        if sender != USER and sender not in self.local_names():
            return
        await self.host.commit(NewMessage(
            sender=wire.SYSTEM_SENDER, kind="notice", recipients=[sender], target=sender, urgent=True,
            text=f"Your {kind} #{message_id} cannot be carried to site {site}: {why}. Shorten it or point to a file.",
        ))

    async def report(self) -> dict[str, Any]:
        """This site's members as they are now, and its usage (the other sites count it in the pod's budget)."""
        unread = await self.host.store.unread_counts()
        local = self.local_names()
        members = [
            {"name": m.name, "state": m.state if m.state in ("busy", "idle", "stopped") else "stopped",
             "state_ts": m.state_ts or None, "tools_ready": m.tools_ready, "unread": unread.get(m.name, 0),
             "last_activity": m.last_activity}
            for m in self.host.members.values() if m.name in local and not m.removed
        ]
        usage = [[agent, model, *values] for agent, model, values in await self.host.local_usage() if agent in local]
        return {"v": ENVELOPE_VERSION, "kind": "state", "site": self.here, "ts": time.time(), "members": members,
                "usage": usage}

    def set_link(self, up: bool, detail: str) -> None:
        if up != self.link["up"] or detail != self.link["detail"]:
            self.link = {"up": up, "since": time.time(), "detail": detail}
            if up:
                self.state_due = True
            self.host.publish(wire.event("site", {"site": self.here, "link": self.link, "ts": time.time()}))

    # -- what the bridge received ----------------------------------------------------------------------

    async def receive(self, subject_site: str, envelopes: list[Any], attempts: list[int]) -> list[dict[str, Any]]:
        """Take envelopes that came on `subject_site`'s subjects, in order; one result each: `stored`,
        `duplicate`, `refused` (drop it: never valid) or `later` (deliver it again). Messages are committed
        together (one group commit) up to one that refers to an ask, which waits for those before it."""
        results: list[dict[str, Any]] = [{} for _ in envelopes]
        receipts: list[tuple[int, ReceiptEnvelope]] = []
        pending: list[tuple[int, NewMessage]] = []
        for index, raw in enumerate(envelopes):
            try:
                env = self._check(subject_site, raw)
                if isinstance(env, ReceiptEnvelope):
                    receipts.append((index, env))
                    results[index] = {"result": "stored"}
                elif isinstance(env, StateEnvelope):
                    await self._apply_report(env)
                    results[index] = {"result": "stored"}
                else:
                    if env.ask_ref is not None and pending:
                        await self._commit_all(pending, results)
                    give_up = index < len(attempts) and attempts[index] >= LATER_ATTEMPTS
                    pending.append((index, await self._prepare(env, give_up)))
            except Refused as exc:
                self.refused[subject_site] = self.refused.get(subject_site, 0) + 1
                log.warning("refused an envelope from site %s: %s", subject_site, exc)
                results[index] = {"result": "refused", "why": str(exc)}
            except Later as exc:
                results[index] = {"result": "later", "why": str(exc)}
        await self._commit_all(pending, results)
        if receipts:
            for index, why in (await self._apply_receipts([env for _, env in receipts])).items():
                results[receipts[index][0]] = {"result": "refused", "why": why}
        return results

    async def _commit_all(self, pending: list[tuple[int, NewMessage]], results: list[dict[str, Any]]) -> None:
        """Commit prepared messages together, in order; one the store could not take is delivered again."""
        done = await asyncio.gather(*(self.host.commit(msg) for _, msg in pending), return_exceptions=True)
        for (index, _), outcome in zip(pending, done, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("a message from another site was not stored (it comes again): %s", outcome)
                results[index] = {"result": "later", "why": f"not stored: {outcome}"}
            else:
                results[index] = {"result": "duplicate" if outcome.duplicate else "stored", "id": outcome.id}
        pending.clear()

    def _check(self, subject_site: str, raw: Any) -> MessageEnvelope | ReceiptEnvelope | StateEnvelope:
        try:
            env = ENVELOPE.validate_python(raw)
        except ValidationError as exc:
            raise Refused(f"not a podctl envelope: {exc.errors(include_url=False)[0]['msg']}") from None
        if env.site != subject_site:
            raise Refused(f"it claims site {env.site!r} but came on the subjects of site {subject_site!r}")
        if env.site == self.here or env.site not in self.spec.sites():
            sites = ", ".join(self.spec.sites())
            raise Refused(f"site {env.site!r} is not another site of pod {self.spec.name} (sites: {sites})")
        return env

    async def _prepare(self, env: MessageEnvelope, give_up: bool) -> NewMessage:
        """The message as this site stores it: its references translated, a reply's recipients decided
        where its ask was made; raises Refused (it may not come from there) or Later (its ask is missing)."""
        m = env.message
        if m.sender not in (USER, wire.SYSTEM_SENDER) and self.site_of(m.sender) != env.site:
            raise Refused(f"{m.sender!r} is not an agent of site {env.site}")
        recipients = [r for r in dict.fromkeys(m.to) if r in self.spec.agents or r == USER]
        ask_id = await self._local_ask(env.ask_ref) if env.ask_ref is not None else None
        reply_to: tuple[int, str] | None = None
        followup = m.followup
        if m.kind == "reply" and env.ask_ref is not None:
            if ask_id is None and not give_up:
                raise Later(f"its ask {env.ask_ref[0]}#{env.ask_ref[1]} has not arrived here yet")
            ask = await self.host.ask_record(ask_id) if ask_id is not None else None
            if ask is not None:
                if m.sender not in ask["targets"]:
                    raise Refused(f"{m.sender} replied to ask {env.ask_ref[0]}#{env.ask_ref[1]}, which was not sent to it")
                followup = ask["targets"][m.sender] is not None
                if env.ask_ref[0] == self.here:
                    recipients = self.host.reply_recipients(ask, followup)
                reply_to = None if followup else (ask["id"], m.sender)
        here = self.local_names() | {USER}
        if not any(r in here for r in recipients) and reply_to is None:
            raise Refused(f"message {env.site}#{m.id} has no recipient at site {self.here}")
        msg = NewMessage(
            sender=m.sender, kind=m.kind, recipients=recipients, text=m.text, target=m.target, ask_id=ask_id,
            urgent=m.urgent, followup=followup, origin=m.origin, ts=m.ts, source=(env.site, m.id), reply_to=reply_to,
        )
        if m.kind == "ask":
            ask_in = env.ask or AskIn()
            msg.ask_mode, msg.ask_route, msg.ask_deadline, msg.ask_behalf = (
                ask_in.mode, ask_in.route, ask_in.deadline, ask_in.behalf)
        return msg

    async def _local_ask(self, ref: tuple[str, int]) -> int | None:
        """This site's id of the ask another site refers to as (site, id there)."""
        site, number = ref
        if site == self.here:
            rows = await self._fetch("SELECT id FROM asks WHERE id=?", (number,))
        else:
            rows = await self._fetch("SELECT local_id FROM site_imports WHERE origin_site=? AND origin_id=?", (site, number))
        return int(rows[0][0]) if rows else None

    async def _apply_receipts(self, receipts: list[ReceiptEnvelope]) -> dict[int, str]:
        """What a recipient at another site did with messages from here; returns the refused ones' why."""
        refused: dict[int, str] = {}
        changed: list[tuple[str, int, str, float]] = []
        async with self.host.store.transaction() as conn:
            for index, env in enumerate(receipts):
                if env.ref[0] != self.here or self.site_of(env.to) != env.site:
                    refused[index] = f"a receipt from site {env.site} for {env.to} of message {env.ref[0]}#{env.ref[1]}"
                    continue
                mid = env.ref[1]
                async with conn.execute(
                    "SELECT injected_at, read_at FROM deliveries WHERE message_id=? AND recipient=?", (mid, env.to)
                ) as cur:
                    row = await cur.fetchone()
                if row is None:
                    refused[index] = f"message {mid} was not sent to {env.to}"
                    continue
                await conn.execute(
                    "UPDATE site_outbox SET arrived_at=coalesce(arrived_at, ?) WHERE message_id=? AND site=?",
                    (env.queued_at or time.time(), mid, env.site),
                )
                injected = env.injected_at if row[0] is None else None
                read = env.read_at if row[1] is None else None
                if injected is not None or read is not None:
                    await conn.execute(
                        "UPDATE deliveries SET injected_at=coalesce(injected_at, ?), read_at=coalesce(read_at, ?)"
                        " WHERE message_id=? AND recipient=?",
                        (injected, read, mid, env.to),
                    )
                changed += [(env.to, mid, state, ts) for state, ts in (("injected", injected), ("read", read)) if ts]
        for to, mid, state, ts in changed:
            self.host.publish(wire.event("delivery", {"to": to, "ids": [mid], "state": state, "ts": ts}))
        return refused

    async def _apply_report(self, env: StateEnvelope) -> None:
        """Another site's members as it reported them (and its usage, for the pod's budgets)."""
        now = time.time()
        self.reports[env.site] = now
        self.host.publish(wire.event("site", {"site": env.site, "reported_at": now, "ts": now}))
        fresh_site = env.site not in self.remote_usage
        for entry in env.members:
            member = self.host.members.get(entry.name)
            if member is None or not member.remote or member.site != env.site:
                continue
            member.reported_at = now
            member.unread = entry.unread
            member.last_activity = entry.last_activity
            if member.tools_ready != entry.tools_ready:
                member.tools_ready = entry.tools_ready
                self.host.publish(wire.event("tools", {"name": member.name, "ready": entry.tools_ready, "ts": now,
                                                       "site": env.site, "reported_at": now}))
            if member.state != entry.state:
                member.state, member.state_ts = entry.state, entry.state_ts or now
                self.host.publish(wire.event("state", {"name": member.name, "state": entry.state,
                                                       "ts": member.state_ts, "site": env.site, "reported_at": now}))
        usage = []
        for row in env.usage:
            if (len(row) >= 7 and isinstance(row[0], str) and self.site_of(row[0]) == env.site
                    and isinstance(row[1], str) and all(isinstance(v, int) and v >= 0 for v in row[2:7])):
                usage.append((row[0], row[1], [int(v) for v in row[2:7]]))
        if usage != self.remote_usage.get(env.site):
            self.remote_usage[env.site] = usage
            await self.host.judge_budgets(changed={name for name, _, _ in usage})
        if fresh_site:
            self.state_due = True  # a site heard for the first time (or again) hears this one's state at once
            self.changed.set()

    def usage_totals(self) -> list[tuple[str, str, list[int]]]:
        """The other sites' usage as they last reported it (each site stores only its own agents')."""
        return [row for rows in self.remote_usage.values() for row in rows]

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        async with self.host.store.rconn.execute(sql, params) as cur:
            return list(await cur.fetchall())
