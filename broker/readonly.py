"""The store of a pod whose broker is down, read with plain sqlite3 in read-only mode (`tail` and
`status` of a pod that is down): no asyncio, no aiosqlite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .queries import (
    ASK_PREVIEW_CHARS,
    EXPIRED_LISTED_S,
    PAGE_BYTES,
    SCHEMA_ATTENTION,
    SCHEMA_USAGE,
    SQL_AGENTS,
    SQL_ATTENTION,
    SQL_HISTORY,
    SQL_LAST_MESSAGE,
    SQL_LAST_WAKES,
    SQL_OPEN_ASKS,
    SQL_SETTINGS,
    SQL_UNSEEN_COUNTS,
    SQL_USAGE,
    Page,
    StoreError,
    attention_map,
    deliveries_map,
    deliveries_sql,
    open_ask_row,
    overview,
    page,
    settings_map,
    usage_row,
)

SCHEMA_ORIGIN = 3
"""The schema version that added messages.origin; an older store (its pod down since before
that podctl) reads as if no message had one."""


class ReadOnlyStore:
    """The store of a pod whose broker is down, read with plain sqlite3 in read-only mode.

    Safe while a broker starts: a reader never writes, never migrates and never blocks the
    broker's writes (WAL). A pod that never started has no store: it reads as empty.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.version = 0
        if path.exists():
            try:
                self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
                self.conn.execute("SELECT 1 FROM messages LIMIT 1")
                self.version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
            except sqlite3.Error as exc:
                self.close()
                if "no such table" not in str(exc):
                    raise StoreError(f"cannot read the pod's store {path}: {exc}") from exc

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self.conn is None:
            return []
        if self.version < SCHEMA_ORIGIN:
            sql = sql.replace("m.origin", "NULL")
        return self.conn.execute(sql, tuple(params)).fetchall()

    def history(self, since: int, limit: int) -> Page:
        """Messages after `since`, each with its delivery; `more` if the page was cut (by count or size)."""
        found = page(self._all(SQL_HISTORY, (since, limit + 1, PAGE_BYTES)), limit)
        ids = [m["id"] for m in found.messages]
        deliveries = deliveries_map(self._all(deliveries_sql(len(ids)), ids)) if ids else {}
        for m in found.messages:
            m["delivery"] = deliveries.get(m["id"], [])
        return found

    def open_asks(self, now: float, limit: int) -> list[dict[str, Any]]:
        return [open_ask_row(r) for r in self._all(SQL_OPEN_ASKS, (ASK_PREVIEW_CHARS, now - EXPIRED_LISTED_S, limit))]

    def usage(self, since: float) -> list[dict[str, Any]]:
        """Usage per agent, model and hour since `since` (none in a store older than schema 4)."""
        if self.version < SCHEMA_USAGE:
            return []
        return [usage_row(r) for r in self._all(SQL_USAGE, (since,))]

    def settings(self) -> dict[str, Any]:
        """The pricing and limits the broker last applied."""
        return settings_map(self._all(SQL_SETTINGS)) if self.version >= SCHEMA_USAGE else {}

    def attention(self) -> dict[str, dict[str, Any]]:
        """Agent -> why it was blocked or failed when the broker stopped (none before schema 5)."""
        return attention_map(self._all(SQL_ATTENTION)) if self.version >= SCHEMA_ATTENTION else {}

    def overview(self) -> dict[str, Any]:
        last = self._all(SQL_LAST_MESSAGE)
        return overview(
            self._all(SQL_AGENTS), self._all(SQL_UNSEEN_COUNTS), last[0] if last else None, self._all(SQL_LAST_WAKES)
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> ReadOnlyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
