"""The SQL that reads the pod's store and the shapes of its rows, shared by the broker's store
(store.py, asyncio) and the read-only view of a pod that is down (readonly.py, plain sqlite3):
each query is written once. Standard library only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podctl.pods.errors import PodctlError

if TYPE_CHECKING:
    from .ports import WakeOutcome
    from .records import AgentStatus, Delivery, DeliveryState, Message

_OLD_WAKE_WORDS: dict[str, WakeOutcome] = {"answered": "woken"}
"""Earlier versions stored `answered` for a nudge that started a turn, which read as if the agent had
answered: stored wake results (ports.Wake) are read in today's words."""


def readable_wake(result: str) -> str:
    return _OLD_WAKE_WORDS.get(result, result)


class StoreError(PodctlError):
    """The pod's store cannot be used; the message names pod.db and what to do."""


class StoreLost(StoreError):
    """pod.db was deleted or replaced under the running broker: nothing more may be acknowledged."""


NEEDS_ATTENTION = "(m.kind IN ('ask','reply') OR m.urgent=1 OR m.sender='user')"
"""Messages that wake an idle agent: asks, replies, urgent tells, and anything from the human."""

MESSAGE_COLUMNS = "m.id, m.ts, m.sender, m.kind, m.recipients, m.text, m.ask_id, m.urgent, m.followup, m.target, m.origin"

MAX_POINTERS = 3
"""Messages too large to inject that one hook points to; the rest are counted as waiting."""
POINTER = ":pointer"
"""Suffix of the claim on messages a hook points to instead of injecting (too large)."""

PAGE_BYTES = 2 * 1024 * 1024
"""A page of messages (history, an inbox) stops once it holds this much text, after at least one
message: no answer can grow past what a client reads and the broker holds comfortably."""


def paged(sql: str) -> str:
    """Wrap a query of MESSAGE_COLUMNS rows (ordered by id, with its LIMIT) so the page stops at
    PAGE_BYTES of text; takes one more parameter, the byte budget. Run it with LIMIT one more
    than the page holds, and read the rows with `page`: each row ends with how many rows the
    LIMIT let through, so a page cut by count or by bytes knows that more wait."""
    return (
        "SELECT * FROM (SELECT *, sum(length(CAST(text AS BLOB))) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING)"
        f" AS run_bytes, count(*) OVER () AS found FROM ({sql})) WHERE run_bytes - length(CAST(text AS BLOB)) < ?"
        " ORDER BY id"
    )


@dataclass
class Page:
    """Messages in id order, and whether more come after the last of them (ask again from its id)."""

    messages: list[Message]
    more: bool


def page(rows: Sequence[Sequence[Any]], limit: int) -> Page:
    """The rows of a `paged` query run with LIMIT `limit + 1`: at most `limit` messages, and `more`
    if the query found rows the page leaves out (past the count, or past PAGE_BYTES)."""
    kept = rows[:limit]
    found = int(rows[0][-1]) if rows else 0
    return Page([message_row(r) for r in kept], more=found > len(kept))


SQL_HISTORY = paged(f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id>? ORDER BY m.id LIMIT ?")
SQL_UNSEEN = paged(
    f"SELECT {MESSAGE_COLUMNS} FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.recipient=? AND d.read_at IS NULL AND d.injected_at IS NULL ORDER BY d.message_id LIMIT ?"
)
SQL_INBOX = paged(
    f"SELECT {MESSAGE_COLUMNS} FROM deliveries d JOIN messages m ON m.id = d.message_id"
    " WHERE d.recipient=? AND d.message_id>? ORDER BY d.message_id LIMIT ?"
)
SQL_AGENTS = "SELECT name, cli, role, state, state_ts, removed FROM agents ORDER BY rowid"
SQL_USAGE = (
    "SELECT agent, model, CAST(ts / 3600 AS INTEGER) * 3600 AS hour, sum(input), sum(cached), sum(output),"
    " sum(reasoning), count(*) FROM usage WHERE ts >= ? GROUP BY agent, model, hour ORDER BY hour, agent, model"
)
"""Usage since a time, per agent, model and hour: every grouping `podctl usage` offers is a sum of these."""
SQL_SETTINGS = "SELECT key, value FROM settings"
SCHEMA_USAGE = 4
"""The schema version that added usage (older stores have none)."""
SQL_ATTENTION = "SELECT agent, data FROM attention"
SCHEMA_ATTENTION = 6
"""The schema version that added attention (why agents are blocked or failed)."""
SQL_UNSEEN_COUNTS = (
    "SELECT recipient, count(*) FROM deliveries WHERE read_at IS NULL AND injected_at IS NULL GROUP BY recipient"
)
SQL_LAST_MESSAGE = "SELECT max(id) FROM messages"
SQL_LAST_WAKES = (
    "SELECT w.agent, w.ts, w.result FROM wakes w WHERE w.id = (SELECT max(id) FROM wakes v WHERE v.agent = w.agent)"
)


ASK_PREVIEW_CHARS = 200
FIRST_ANSWERED = "(a.mode = 'first' AND EXISTS (SELECT 1 FROM ask_targets u WHERE u.ask_id = a.id AND u.reply_id IS NOT NULL))"
"""An ask of mode `first` that someone answered: it is settled for all its targets."""
SQL_OPEN_ASKS = (
    "SELECT a.id, a.asker, a.mode, a.route, a.deadline, m.ts, m.target, substr(m.text, 1, ?), m.origin,"
    " (SELECT json_group_array(json_array(t.agent, t.reply_id, t.replied_at)) FROM ask_targets t WHERE t.ask_id = a.id)"
    " FROM asks a JOIN messages m ON m.id = a.id"
    " WHERE EXISTS (SELECT 1 FROM ask_targets t WHERE t.ask_id = a.id AND t.reply_id IS NULL)"
    f" AND NOT {FIRST_ANSWERED}"
    " AND (a.deadline IS NULL OR a.deadline > ?)"
    " ORDER BY a.id DESC LIMIT ?"
)
"""Asks still waiting for an answer (mode `all`: someone has not replied; `first`: nobody has),
newest first; an expired one is listed until `EXPIRED_LISTED_S` after its deadline. Parameters:
ASK_PREVIEW_CHARS, the oldest deadline listed, the limit."""
EXPIRED_LISTED_S = 600.0

SQL_SEEN_OPEN_ASKS = (
    f"SELECT {MESSAGE_COLUMNS}, length(CAST(m.text AS BLOB)) FROM ask_targets t JOIN asks a ON a.id = t.ask_id"
    " JOIN messages m ON m.id = a.id JOIN deliveries d ON d.message_id = a.id AND d.recipient = t.agent"
    " WHERE t.agent = ? AND t.reply_id IS NULL AND (d.injected_at IS NOT NULL OR d.read_at IS NOT NULL)"
    " AND (a.deadline IS NULL OR a.deadline > ?)"
    f" AND NOT {FIRST_ANSWERED}"
    " ORDER BY a.id LIMIT ?"
)
"""Open asks to an agent that a model of it was shown (injected or read) and that it has not answered,
oldest first, each with its size: a new session is shown them again. Parameters: agent, now, limit."""
SQL_OPEN_TO = (
    "SELECT a.id, a.asker FROM ask_targets t JOIN asks a ON a.id = t.ask_id"
    " WHERE t.agent = ? AND t.reply_id IS NULL AND (a.deadline IS NULL OR a.deadline > ?)"
    f" AND NOT {FIRST_ANSWERED}"
    " ORDER BY a.id LIMIT ?"
)
"""Open asks to an agent that it has not answered, oldest first: (ask_id, asker). Parameters: agent, now, limit."""


def open_ask_row(row: Sequence[Any]) -> dict[str, Any]:
    """A row of SQL_OPEN_ASKS as the wire's open ask (the `asks` operation)."""
    targets = [{"name": t[0], "reply_id": t[1], "replied_at": t[2]} for t in json.loads(row[9])]
    return {
        "ask_id": row[0], "from": row[1], "mode": row[2], "route": row[3], "deadline": row[4], "ts": row[5],
        "target": row[6], "text": row[7], "origin": row[8], "targets": sorted(targets, key=lambda t: t["name"]),
        "waiting_on": sorted(t["name"] for t in targets if t["reply_id"] is None),
    }


def deliveries_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return (
        "SELECT message_id, recipient, queued_at, injected_at, read_at FROM deliveries"
        f" WHERE message_id IN ({marks}) ORDER BY message_id, recipient"
    )


def deliveries_map(rows: Iterable[Sequence[Any]]) -> dict[int, list[Delivery]]:
    out: dict[int, list[Delivery]] = {}
    for mid, rcpt, queued, injected, read in rows:
        out.setdefault(mid, []).append({
            "to": rcpt, "state": delivery_state(injected, read),
            "queued_at": queued, "injected_at": injected, "read_at": read,
        })
    return out


def message_row(row: Sequence[Any]) -> Message:
    """A messages row (MESSAGE_COLUMNS) as the wire's message dict."""
    return {
        "id": row[0],
        "ts": row[1],
        "from": row[2],
        "kind": row[3],
        "to": json.loads(row[4]),
        "text": row[5],
        "ask_id": row[6],
        "urgent": bool(row[7]),
        "followup": bool(row[8]),
        "target": row[9],
        "origin": row[10],
    }


def delivery_state(injected_at: float | None, read_at: float | None) -> DeliveryState:
    if read_at is not None:
        return "read"
    if injected_at is not None:
        return "injected"
    return "queued"


def overview(
    agents: Sequence[Sequence[Any]], unseen: Sequence[Sequence[Any]], last: Sequence[Any] | None,
    wakes: Sequence[Sequence[Any]],
) -> dict[str, Any]:
    return {
        "agents": [
            {"name": r[0], "cli": r[1], "role": r[2], "state": r[3], "state_ts": r[4], "removed": bool(r[5])}
            for r in agents
        ],
        "unseen": {r[0]: r[1] for r in unseen},
        "last_message_id": last[0] if last else None,
        "last_wakes": {r[0]: {"ts": r[1], "result": readable_wake(r[2])} for r in wakes},
    }


def status_row(
    name: str, cli: str, role: str, state: str, state_ts: float | None, *, unread: int, last_wake: str | None,
    last_wake_ts: float | None, tools_ready: bool, **more: Any,
) -> AgentStatus:
    """An agent's row of `status`: the one place it is built, for a running pod (the broker adds what it
    knows: `more`, each key one of AgentStatus's) and for one that is down (its store's)."""
    row: AgentStatus = {
        "name": name, "cli": cli, "role": role, "state": state, "state_ts": state_ts or None, "unread": unread,
        "last_wake": last_wake, "last_wake_ts": last_wake_ts, "tools_ready": tools_ready,
    }
    row.update(more)  # type: ignore[typeddict-item]  # the optional fields, each typed where it is made
    return row


def agents_of_a_pod_down(stored: dict[str, Any]) -> list[AgentStatus]:
    """The agents of a pod that is down, from its store's `overview`: every one `stopped` (nothing
    runs), with its unread count and last wake. `status` and the live view say the same."""
    rows: list[AgentStatus] = []
    for row in stored["agents"]:
        if row["removed"]:
            continue
        wake = stored["last_wakes"].get(row["name"]) or {}
        rows.append(status_row(
            row["name"], row["cli"], row["role"], "stopped", row["state_ts"], unread=stored["unseen"].get(row["name"], 0),
            last_wake=wake.get("result"), last_wake_ts=wake.get("ts"), tools_ready=False,
        ))
    return rows


def usage_row(row: Sequence[Any]) -> dict[str, Any]:
    agent, model, hour, inp, cached, output, reasoning, requests = row
    return {"agent": agent, "model": model, "hour": hour, "input": inp, "cached": cached, "output": output,
            "reasoning": reasoning, "requests": requests}


def attention_map(rows: Iterable[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """Agent -> why it is blocked or failed (broker/attention.py's `Need` as JSON)."""
    out: dict[str, dict[str, Any]] = {}
    for agent, data in rows:
        try:
            value = json.loads(data)
        except ValueError:
            continue
        if isinstance(value, dict):
            out[agent] = value
    return out


def settings_map(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in rows}
