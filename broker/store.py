"""The pod's durable store (`Store`): one SQLite file, its core in store_core.py (connections, the
group commit, durability), its records by concern: deliveries (deliveries_store.py), asks
(asks_store.py), and here the agents, attention, rules, roles and history."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .asks_store import AskRecords
from .commits import BatchHook, NewMessage
from .deliveries_store import DeliveryRecords
from .queries import (
    MESSAGE_COLUMNS,
    PAGE_BYTES,
    SQL_AGENTS,
    SQL_ATTENTION,
    SQL_HISTORY,
    SQL_LAST_MESSAGE,
    SQL_LAST_WAKES,
    SQL_UNSEEN_COUNTS,
    Page,
    attention_map,
    message_row,
    overview,
    page,
)
from .schema import MIGRATIONS
from .store_core import StoreCore

__all__ = ["MIGRATIONS", "BatchHook", "NewMessage", "RuleRecord", "Store"]

if TYPE_CHECKING:
    from .records import Message


@dataclass
class RuleRecord:
    """A rule's state as stored: its rounds, last firing, open ask, and the git tree per (agent, workdir)
    its next diff starts from (None: from the agent's starting commit)."""

    rounds: int = 0
    last_fired: float = 0.0
    open_ask: int | None = None
    baselines: dict[tuple[str, str], str | None] = field(default_factory=dict)



class Store(DeliveryRecords, AskRecords, StoreCore):
    """The pod's store: its core (store_core.py), deliveries (deliveries_store.py), asks
    (asks_store.py), and here the agents, attention, rules, roles, history and pruning. The read
    queries themselves are in queries.py, shared with readonly.py; the usage tables' SQL is in
    usage_store.py."""

    async def sync_agents(self, agents: dict[str, tuple[str, str]]) -> tuple[list[str], list[str], list[str]]:
        """Make the registry match `{name: (cli, role)}`; returns (added, removed, role_changed)."""
        rows = await self._fetchall("SELECT name, cli, role, removed FROM agents")
        known = {r[0]: (r[1], r[2], bool(r[3])) for r in rows}
        added, removed, changed = [], [], []
        statements: list[tuple[str, Sequence[Any]]] = []
        for name, (cli, role) in agents.items():
            if name not in known:
                added.append(name)
                statements.append(("INSERT INTO agents(name, cli, role) VALUES (?,?,?)", (name, cli, role)))
                continue
            _, old_role, was_removed = known[name]
            if was_removed:
                added.append(name)
            elif old_role != role:
                changed.append(name)
            statements.append(("UPDATE agents SET cli=?, role=?, removed=0 WHERE name=?", (cli, role, name)))
        for name, (_, _, was_removed) in known.items():
            if name not in agents and not was_removed:
                removed.append(name)
                statements.append(("UPDATE agents SET removed=1, state='stopped' WHERE name=?", (name,)))
        if statements:
            await self._write_many(statements)
        return added, removed, changed

    async def set_state(self, name: str, state: str, ts: float) -> None:
        await self._write_many([
            ("UPDATE agents SET state=?, state_ts=? WHERE name=?", (state, ts, name)),
            ("INSERT INTO state_changes(agent, state, ts) VALUES (?,?,?)", (name, state, ts)),
        ])

    async def save_attention(self, agent: str, data: dict[str, Any] | None) -> None:
        """Keep (or with None forget) why the agent is blocked or failed."""
        if data is None:
            await self._write("DELETE FROM attention WHERE agent=?", (agent,))
        else:
            await self._write("INSERT OR REPLACE INTO attention(agent, data) VALUES (?,?)", (agent, json.dumps(data)))

    async def attention(self) -> dict[str, dict[str, Any]]:
        return attention_map(await self._fetchall(SQL_ATTENTION))

    async def allow_always(self, agent: str, tool: str, detail: str, by: str, ts: float) -> None:
        await self._write(
            "INSERT OR REPLACE INTO always_allowed(agent, tool, detail, by, ts) VALUES (?,?,?,?,?)",
            (agent, tool, detail, by, ts),
        )

    async def always_allowed(self) -> dict[tuple[str, str, str], str]:
        """(agent, tool, detail) -> who answered `always`."""
        rows = await self._fetchall("SELECT agent, tool, detail, by FROM always_allowed")
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    async def history(self, since: int, limit: int) -> Page:
        return page(await self._fetchall(SQL_HISTORY, (since, limit + 1, PAGE_BYTES)), limit)

    async def overview(self) -> dict[str, Any]:
        """What `status` shows of the store: agents, unseen counts, the last message, the last wakes."""
        return overview(
            await self._fetchall(SQL_AGENTS), await self._fetchall(SQL_UNSEEN_COUNTS),
            await self._fetchone(SQL_LAST_MESSAGE), await self._fetchall(SQL_LAST_WAKES),
        )

    async def rule_states(self) -> dict[str, RuleRecord]:
        """Every rule's stored state, by name."""
        out = {
            str(r[0]): RuleRecord(int(r[1]), float(r[2]), r[3])
            for r in await self._fetchall("SELECT name, rounds, last_fired, open_ask FROM rule_state")
        }
        for rule, agent, workdir, tree in await self._fetchall("SELECT rule, agent, workdir, tree FROM rule_baselines"):
            if rule in out:
                out[rule].baselines[(agent, workdir)] = tree
        return out

    async def save_rule_state(self, name: str, record: RuleRecord) -> None:
        """Store a rule's state as it is now (one transaction)."""
        await self._write_many([
            ("INSERT INTO rule_state(name, rounds, last_fired, open_ask) VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE"
             " SET rounds=excluded.rounds, last_fired=excluded.last_fired, open_ask=excluded.open_ask",
             (name, record.rounds, record.last_fired, record.open_ask)),
            ("DELETE FROM rule_baselines WHERE rule=?", (name,)),
            *[("INSERT INTO rule_baselines(rule, agent, workdir, tree) VALUES (?,?,?,?)", (name, agent, workdir, tree))
              for (agent, workdir), tree in record.baselines.items()],
        ])

    async def forget_rules(self, keep: Sequence[str]) -> None:
        """Drop the stored state of rules that are no longer in the pod file."""
        marks = ",".join("?" * len(keep))
        where = f" NOT IN ({marks})" if keep else " IS NOT NULL"
        await self._write_many([
            (f"DELETE FROM rule_state WHERE name{where}", tuple(keep)),
            (f"DELETE FROM rule_baselines WHERE rule{where}", tuple(keep)),
        ])

    async def told_roles(self) -> dict[str, str]:
        """The role each registered agent's model was last told: by a role notice, else the role it was
        registered (or last applied) with, which its sessions' intros gave it."""
        return {str(r[0]): str(r[1]) for r in await self._fetchall("SELECT name, coalesce(told_role, role) FROM agents")}

    async def set_told_role(self, agent: str, role: str) -> None:
        await self._write("UPDATE agents SET told_role=? WHERE name=?", (role, agent))

    async def conversation_of(self, agent: str, limit: int) -> list[Message]:
        """The agent's recent tells, asks and replies (sent or received), oldest first."""
        rows = await self._fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.kind IN ('tell','ask','reply')"
            " AND (m.sender=? OR EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id=m.id AND d.recipient=?))"
            " ORDER BY m.id DESC LIMIT ?",
            (agent, agent, limit),
        )
        return [message_row(r) for r in reversed(rows)]

    async def last_said(self, agent: str) -> str:
        """The text of the agent's last tell, ask or reply ('' if none)."""
        row = await self._fetchone(
            "SELECT text FROM messages WHERE sender=? AND kind IN ('tell','ask','reply') ORDER BY id DESC LIMIT 1",
            (agent,),
        )
        return row[0] if row else ""

    async def record_wake(self, agent: str, ts: float, result: str) -> None:
        await self._write("INSERT INTO wakes(agent, ts, result) VALUES (?,?,?)", (agent, ts, result))

    async def prune(self, before: float) -> int:
        """Delete messages older than `before` whose asks are settled; returns how many."""
        async with self.transaction() as conn:
            cur = await conn.execute("SELECT id FROM messages WHERE ts < ?", (before,))
            ids = [r[0] for r in await cur.fetchall()]
            await cur.close()
            for chunk in range(0, len(ids), 500):
                part = ids[chunk:chunk + 500]
                marks = ",".join("?" * len(part))
                await conn.execute(f"DELETE FROM deliveries WHERE message_id IN ({marks})", part)
                await conn.execute(f"DELETE FROM ask_targets WHERE ask_id IN ({marks})", part)
                await conn.execute(f"DELETE FROM asks WHERE id IN ({marks})", part)
                await conn.execute(f"DELETE FROM messages WHERE id IN ({marks})", part)
            await conn.execute("DELETE FROM state_changes WHERE ts < ?", (before,))
            await conn.execute("DELETE FROM wakes WHERE ts < ?", (before,))
        return len(ids)
