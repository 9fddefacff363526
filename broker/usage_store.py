"""The usage tables of the pod's store: each model request once, how far each session file was read,
the pricing and limits last applied, and the budget notices already given.

A report's records and its file position are written in one transaction, so a supervisor that
dies between reading and reporting reads the same lines again, and their keys keep them from
counting twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .queries import SQL_SETTINGS, SQL_USAGE, settings_map, usage_row
from .store import Store

TOTALS = "SELECT agent, model, sum(input), sum(cached), sum(output), sum(reasoning), count(*) FROM usage GROUP BY agent, model"


class UsageStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(
        self, agent: str, path: str, *, inode: int, offset: int, state: dict[str, Any],
        records: Sequence[dict[str, Any]],
    ) -> int:
        """Store new records (a key seen before is ignored) and the file's position; returns how many were new."""
        async with self.store.transaction() as conn:
            before = conn.total_changes
            await conn.executemany(
                "INSERT OR IGNORE INTO usage(agent, key, model, ts, input, cached, output, reasoning)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [(agent, r["key"], r["model"], r["ts"], r["input"], r["cached"], r["output"], r["reasoning"])
                 for r in records],
            )
            added = conn.total_changes - before
            await conn.execute(
                "INSERT INTO usage_files(agent, path, inode, offset, state) VALUES (?,?,?,?,?)"
                " ON CONFLICT(agent, path) DO UPDATE SET inode=excluded.inode, offset=excluded.offset,"
                " state=excluded.state",
                (agent, path, inode, offset, json.dumps(state)),
            )
        return added

    async def cursors(self) -> list[dict[str, Any]]:
        rows = await self._all("SELECT agent, path, inode, offset, state FROM usage_files")
        return [{"agent": a, "path": p, "inode": i, "offset": o, "state": json.loads(s)} for a, p, i, o, s in rows]

    async def rows(self, since: float) -> list[dict[str, Any]]:
        return [usage_row(r) for r in await self._all(SQL_USAGE, (since,))]

    async def totals(self) -> list[tuple[str, str, list[int]]]:
        """All-time (agent, model, [input, cached, output, reasoning, requests]): what budgets count."""
        return [(r[0], r[1], [int(v or 0) for v in r[2:]]) for r in await self._all(TOTALS)]

    async def save_settings(self, values: dict[str, Any]) -> None:
        async with self.store.transaction() as conn:
            await conn.executemany(
                "INSERT INTO settings(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [(key, json.dumps(value)) for key, value in values.items()],
            )

    async def settings(self) -> dict[str, Any]:
        return settings_map(await self._all(SQL_SETTINGS))

    async def noticed(self) -> set[str]:
        return {r[0] for r in await self._all("SELECT key FROM budget_notices")}

    async def add_notices(self, keys: Sequence[str], now: float) -> None:
        async with self.store.transaction() as conn:
            await conn.executemany("INSERT OR IGNORE INTO budget_notices(key, ts) VALUES (?,?)", [(k, now) for k in keys])

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.store.rconn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())
