"""The store's records of delivery: which messages reached which model (injected by a hook, or read),
the claims hooks take on them, and the messages no model has seen for long."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .queries import (
    MAX_POINTERS,
    MESSAGE_COLUMNS,
    NEEDS_ATTENTION,
    PAGE_BYTES,
    POINTER,
    SQL_INBOX,
    SQL_UNSEEN,
    SQL_UNSEEN_COUNTS,
    Page,
    deliveries_map,
    deliveries_sql,
    message_row,
    page,
)
from .store_core import StoreCore, first

if TYPE_CHECKING:
    from .records import Delivery, Message


def within_budget(rows: list[Any], max_bytes: int) -> list[Any]:
    """The leading rows whose sizes (each row's last column) add up to at most `max_bytes`.

    It stops at the first row that does not fit, so a batch never skips ahead of an older message
    that the next hook can still inject."""
    taken, total = [], 0
    for row in rows:
        total += row[-1]
        if total > max_bytes:
            break
        taken.append(row)
    return taken



_MARK_READ = (
    "UPDATE deliveries SET read_at=? WHERE recipient=? AND read_at IS NULL AND message_id IN ({marks})"
    " RETURNING message_id"
)


class DeliveryRecords(StoreCore):
    """Deliveries: inboxes, hook claims, read marks, non-delivery notices."""

    async def unseen(self, agent: str, limit: int) -> Page:
        """The agent's messages that no hook injected and no read returned yet."""
        return page(await self._fetchall(SQL_UNSEEN, (agent, limit + 1, PAGE_BYTES)), limit)

    async def take_unseen(self, agent: str, limit: int, now: float) -> tuple[Page, list[int]]:
        """`unseen`, and those messages marked read (the ones that were not read before), in one
        transaction of the writer's thread: one hand-over where a read and then a mark took two."""

        def take(conn: sqlite3.Connection) -> tuple[Page, list[int]]:
            found = page(conn.execute(SQL_UNSEEN, (agent, limit + 1, PAGE_BYTES)).fetchall(), limit)
            ids = [m["id"] for m in found.messages]
            if not ids:
                return found, []
            rows = conn.execute(_MARK_READ.format(marks=",".join("?" * len(ids))), (now, agent, *ids)).fetchall()
            return found, sorted(int(r[0]) for r in rows)

        async with self._lock:
            return await self._in_writer(take)

    async def inbox(self, agent: str, since: int, limit: int) -> Page:
        return page(await self._fetchall(SQL_INBOX, (agent, since, limit + 1, PAGE_BYTES)), limit)

    async def mark_read(self, agent: str, ids: list[int], now: float) -> list[int]:
        """Mark messages read; returns the ones that were not read before."""
        if not ids:
            return []
        return await self._write_returning(_MARK_READ.format(marks=",".join("?" * len(ids))), (now, agent, *ids))

    async def claim(
        self, agent: str, now: float, lease_s: float, *, max_bytes: int, max_count: int, attention_only: bool = False
    ) -> tuple[str | None, list[Message], list[dict[str, Any]], int]:
        """Claim a bounded batch of the agent's messages that no model has seen yet, for a hook to inject.

        Oldest first, at most `max_count` messages and `max_bytes` of text (UTF-8), so one hook's
        answer and output stay small however much is queued. A message larger than `max_bytes` is
        never injected: it is claimed as a pointer (the hook says it waits for `read_messages`),
        once, and stays unseen until read. Returns (claim, messages, pointers, more), `more` being
        the messages left waiting after this batch."""
        attention = f" AND {NEEDS_ATTENTION}" if attention_only else ""
        claimable = (
            " FROM deliveries d JOIN messages m ON m.id = d.message_id"
            " WHERE d.recipient=? AND d.injected_at IS NULL AND d.read_at IS NULL"
            f" AND (d.claim IS NULL OR d.claimed_at < ?){attention}"
        )
        size = "length(CAST(m.text AS BLOB))"
        eligible = f" AND ({size} <= ? OR d.pointed_at IS NULL)"
        params = (agent, now - lease_s, max_bytes)
        window = max_count + MAX_POINTERS
        columns = MESSAGE_COLUMNS.replace("m.text", f"CASE WHEN {size} <= ? THEN m.text ELSE '' END")
        async with self.transaction() as conn:
            # One query in the common case (nothing or a little waiting): the hook runs after every tool call.
            async with conn.execute(
                f"SELECT {columns}, {size}{claimable}{eligible} ORDER BY d.message_id LIMIT ?",
                (max_bytes, *params, window),
            ) as cur:
                found = list(await cur.fetchall())
            fitting = [r for r in found if r[-1] <= max_bytes]
            rows = within_budget(fitting[:max_count], max_bytes)
            oversized = [r for r in found if r[-1] > max_bytes]
            big = oversized[:MAX_POINTERS]
            if len(found) < window:
                more = len(fitting) - len(rows) + len(oversized) - len(big)
            else:
                async with conn.execute(f"SELECT count(*){claimable}{eligible}", params) as cur:
                    more = int(first(await cur.fetchone())) - len(rows) - len(big)
            if not rows and not big:
                return None, [], [], more
            claim = uuid.uuid4().hex
            for ids, value in (([r[0] for r in rows], claim), ([r[0] for r in big], claim + POINTER)):
                if ids:
                    marks = ",".join("?" * len(ids))
                    await conn.execute(
                        f"UPDATE deliveries SET claim=?, claimed_at=? WHERE recipient=? AND message_id IN ({marks})",
                        (value, now, agent, *ids),
                    )
            pointers = [{"id": r[0], "from": r[2], "kind": r[3], "ask_id": r[6], "bytes": r[-1]} for r in big]
            return claim, [message_row(r) for r in rows], pointers, more

    async def ack_claim(self, agent: str, claim: str, now: float) -> list[int]:
        """The hook printed its batch: those messages are injected (returned), its pointers shown (once)."""
        injected = await self._write_returning(
            "UPDATE deliveries SET injected_at=? WHERE recipient=? AND claim=? AND injected_at IS NULL"
            " RETURNING message_id",
            (now, agent, claim),
        )
        await self._write(
            "UPDATE deliveries SET pointed_at=? WHERE recipient=? AND claim=? AND pointed_at IS NULL",
            (now, agent, claim + POINTER),
        )
        return injected

    async def deliveries_of(self, message_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        if not message_ids:
            return {}
        return deliveries_map(await self._fetchall(deliveries_sql(len(message_ids)), tuple(message_ids)))

    async def unread_counts(self) -> dict[str, int]:
        return dict(await self._fetchall(SQL_UNSEEN_COUNTS))

    async def pending_wakeworthy(self, agent: str) -> int:
        """Messages that call for the agent's attention (asks, urgent tells, replies) that no model of
        it has seen: neither injected, nor pointed to, nor read."""
        row = await self._fetchone(
            "SELECT count(*) FROM deliveries d JOIN messages m ON m.id=d.message_id"
            " WHERE d.recipient=? AND d.read_at IS NULL AND d.injected_at IS NULL AND d.pointed_at IS NULL"
            f" AND {NEEDS_ATTENTION}",
            (agent,),
        )
        return row[0] if row else 0

    async def mark_noticed(self, deliveries: Sequence[tuple[int, str]], now: float) -> None:
        await self._write_many([
            ("UPDATE deliveries SET notice_at=? WHERE message_id=? AND recipient=?", (now, mid, rcpt))
            for mid, rcpt in deliveries
        ])

    async def overdue(self, older_than: float) -> list[tuple[int, str, str, str]]:
        """Deliveries no model has seen since before `older_than`: (message_id, recipient, sender, kind)."""
        return [tuple(r) for r in await self._fetchall(
            "SELECT d.message_id, d.recipient, m.sender, m.kind FROM deliveries d JOIN messages m ON m.id=d.message_id"
            " WHERE d.injected_at IS NULL AND d.read_at IS NULL AND d.notice_at IS NULL AND d.queued_at < ?"
            " AND m.kind != 'notice'",
            (older_than,),
        )]
