"""The store's records of asks: who was asked, who answered, deadlines, and the messages they refer to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .queries import (
    ASK_PREVIEW_CHARS,
    EXPIRED_LISTED_S,
    MESSAGE_COLUMNS,
    SQL_OPEN_ASKS,
    SQL_OPEN_TO,
    SQL_SEEN_OPEN_ASKS,
    message_row,
    open_ask_row,
)
from .store_core import StoreCore
from .wire import SYSTEM_SENDER

if TYPE_CHECKING:
    from .records import Message


class AskRecords(StoreCore):
    """Asks and their answers."""

    async def ask(self, ask_id: int) -> dict[str, Any] | None:
        """An ask and its targets (with the reply of each, if any), in one read."""
        rows = await self._fetchall(
            "SELECT a.id, a.asker, a.mode, a.route, a.deadline, a.behalf, a.expiry_checked, t.agent, t.reply_id"
            " FROM asks a LEFT JOIN ask_targets t ON t.ask_id = a.id WHERE a.id=? ORDER BY t.agent",
            (ask_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return {
            "id": row[0], "asker": row[1], "mode": row[2], "route": row[3], "deadline": row[4],
            "behalf": row[5], "expiry_checked": row[6],
            "targets": {r[7]: r[8] for r in rows if r[7] is not None},
        }

    async def seen_open_asks(self, agent: str, now: float, limit: int) -> list[tuple[Message, int]]:
        """Open asks to `agent` that a model of it was shown and it has not answered, with their sizes
        (queries.SQL_SEEN_OPEN_ASKS)."""
        return [(message_row(r), int(r[-1])) for r in await self._fetchall(SQL_SEEN_OPEN_ASKS, (agent, now, limit))]

    async def open_asks_to(self, agent: str, now: float, limit: int) -> list[tuple[int, str]]:
        """(ask_id, asker) of the open asks to `agent` it has not answered, oldest first."""
        return [(int(r[0]), str(r[1])) for r in await self._fetchall(SQL_OPEN_TO, (agent, now, limit))]

    async def answered_by(self, agent: str, ask_ids: Sequence[int]) -> set[int]:
        """Which of these asks `agent` has replied to."""
        if not ask_ids:
            return set()
        marks = ",".join("?" * len(ask_ids))
        rows = await self._fetchall(
            f"SELECT ask_id FROM ask_targets WHERE agent=? AND reply_id IS NOT NULL AND ask_id IN ({marks})",
            (agent, *ask_ids),
        )
        return {int(r[0]) for r in rows}

    async def asks_to_expire(self) -> list[tuple[int, float]]:
        """(ask_id, deadline) of the asks with a deadline not looked at since it passed (agents' and the
        user's: a rule's own asks are its business)."""
        rows = await self._fetchall(
            "SELECT id, deadline FROM asks WHERE deadline IS NOT NULL AND expiry_checked IS NULL AND asker != ?",
            (SYSTEM_SENDER,),
        )
        return [(int(r[0]), float(r[1])) for r in rows]

    async def mark_expiry_checked(self, ask_id: int, now: float) -> bool:
        """Record that the ask was looked at after its deadline; False if it already was (by someone else)."""
        changed = await self._write(
            "UPDATE asks SET expiry_checked=? WHERE id=? AND expiry_checked IS NULL", (now, ask_id)
        )
        return changed > 0

    async def open_asks(self, now: float, limit: int) -> list[dict[str, Any]]:
        """Asks still waiting for an answer, newest first (queries.SQL_OPEN_ASKS)."""
        rows = await self._fetchall(SQL_OPEN_ASKS, (ASK_PREVIEW_CHARS, now - EXPIRED_LISTED_S, limit))
        return [open_ask_row(r) for r in rows]

    async def drop_from_asks(self, agent: str, now: float) -> list[int]:
        """Take an agent that left the pod out of the open asks still waiting for it (their other
        members' answers complete them); returns those asks' ids. Their deliveries to it count as
        noticed: the askers are told once, by the broker, not again as undelivered."""
        rows = await self._fetchall(
            "SELECT t.ask_id FROM ask_targets t JOIN asks a ON a.id = t.ask_id"
            " WHERE t.agent = ? AND t.reply_id IS NULL AND (a.deadline IS NULL OR a.deadline > ?)"
            " AND NOT (a.mode = 'first' AND EXISTS"
            " (SELECT 1 FROM ask_targets u WHERE u.ask_id = a.id AND u.reply_id IS NOT NULL))"
            " ORDER BY t.ask_id",
            (agent, now),
        )
        ids = [r[0] for r in rows]
        statements: list[tuple[str, Sequence[Any]]] = []
        for ask_id in ids:
            statements.append(("DELETE FROM ask_targets WHERE ask_id=? AND agent=? AND reply_id IS NULL", (ask_id, agent)))
            statements.append((
                "UPDATE deliveries SET notice_at=? WHERE message_id=? AND recipient=? AND notice_at IS NULL",
                (now, ask_id, agent),
            ))
        if statements:
            await self._write_many(statements)
        return ids

    async def messages_by_id(self, ids: Sequence[int]) -> list[Message]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self._fetchall(f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id IN ({marks}) ORDER BY m.id", tuple(ids))
        return [message_row(r) for r in rows]
