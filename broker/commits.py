"""A message on its way into the store, and the group commit that writes a batch of them.

`Store.commit_message` (store_core.py) gathers concurrent messages into one batch; the batch is one
transaction, run whole in the `BatchWriter`'s thread: the `BatchHook`s' writes (a pod across
machines: the outbox and imports), the ids, the messages, their deliveries and asks, then COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .paths import USER


class BatchHook(Protocol):
    """Writes that belong in a batch of messages' own transaction (broker/sites.py: the outbox, imports)."""

    def before(self, conn: sqlite3.Connection, batch: list[NewMessage]) -> list[NewMessage]:
        """The messages to insert; the others are marked `duplicate` (with the stored id). Run in the
        BatchWriter's thread, inside the batch's transaction."""
        ...

    def after(self, conn: sqlite3.Connection, fresh: list[NewMessage]) -> None:
        """Called once `fresh` is inserted, before the transaction commits (in the same thread)."""
        ...


def wakes(kind: str, urgent: bool, sender: str) -> bool:
    """Whether a message wakes an idle recipient: an ask, a reply, an urgent tell, or the user's
    (the same rule as queries.NEEDS_ATTENTION, in SQL)."""
    return kind in ("ask", "reply") or urgent or sender == USER


@dataclass
class NewMessage:
    """A message to commit, with what the broker decided about it."""

    sender: str
    kind: str
    recipients: list[str]
    text: str
    target: str | None = None
    ask_id: int | None = None
    urgent: bool = False
    followup: bool = False
    client_msg_id: str | None = None
    ask_mode: str | None = None
    """Set for kind 'ask': the ask row is created with these targets."""
    ask_route: str | None = None
    ask_deadline: float | None = None
    ask_behalf: str | None = None
    """Set for a rule's ask: the agent it asks for (late replies and follow-ups go to it)."""
    reply_to: tuple[int, str] | None = None
    """Set for a first reply: (ask_id, replier) marks that target answered."""
    origin: str | None = None
    """What produced it when not its sender's own doing: `rule:<name>` or `handoff`."""
    source: tuple[str, int] | None = None
    """Set for a message another site committed first: (that site, its id there); stored once (sites.py)."""
    ts: float = field(default_factory=time.time)
    id: int | None = None
    duplicate: bool = False
    """A retry of a message already stored (same sender and client_msg_id): not stored again."""
    conflict: bool = False
    """The client_msg_id was already used by this sender for a different message."""

    def same_as(self, kind: str, recipients: list[str], text: str) -> bool:
        return (self.kind, self.recipients, self.text) == (kind, recipients, text)

    def wakes(self) -> bool:
        return wakes(self.kind, self.urgent, self.sender)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "from": self.sender,
            "kind": self.kind,
            "to": self.recipients,
            "text": self.text,
            "ask_id": self.ask_id,
            "urgent": self.urgent,
            "followup": self.followup,
            "target": self.target,
            "origin": self.origin,
        }


T = TypeVar("T")
Then = Callable[["NewMessage | None", "BaseException | None"], None]
"""What is told when a message's group commit ended: (the message, None) once it is durable, or
(None, the error) when it was not stored."""


class Waiter:
    """One message's place in a group commit: told once, when it is durable or failed."""

    __slots__ = ("done", "message", "then")

    def __init__(self, message: NewMessage, then: Then) -> None:
        self.message = message
        self.then = then
        self.done = False

    def settle(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        self.then(None if error is not None else self.message, error)


def in_transaction(body: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
    """Run `body` in one write transaction that ends here: COMMIT, or ROLLBACK on any error (run in
    the BatchWriter's thread); returns what `body` returns."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")  # only an earlier ROLLBACK that failed leaves one: never build on it
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
        conn.execute("COMMIT")
        return result
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def run_statements(statements: Sequence[tuple[str, Sequence[Any]]], conn: sqlite3.Connection) -> None:
    for sql, params in statements:
        conn.execute(sql, tuple(params))


def insert_batch(
    batch: list[NewMessage], assign_ids: Callable[[list[NewMessage]], list[NewMessage]], hooks: list[BatchHook],
    conn: sqlite3.Connection,
) -> None:
    """A group commit's writes, in the BatchWriter's thread and its transaction: the hooks' `before`
    (messages from other sites stored before are duplicates), ids, the inserts, the hooks' `after`."""
    for hook in hooks:
        batch = hook.before(conn, batch)
    fresh = _insert_messages(assign_ids(batch), conn)
    for hook in hooks:
        hook.after(conn, fresh)


def _insert_messages(fresh: list[NewMessage], conn: sqlite3.Connection) -> list[NewMessage]:
    """Insert a batch with a fixed number of statements, whatever its size; returns those inserted. A
    message whose (sender, client_msg_id) is already stored is a retry: it gets the stored id and is
    not inserted again."""
    inserted = _insert_rows(
        conn, "INSERT OR IGNORE INTO messages(id, ts, sender, kind, recipients, target, text, ask_id, urgent, followup,"
        " client_msg_id, origin) VALUES ", 12,
        [
            (m.id, m.ts, m.sender, m.kind, json.dumps(m.recipients), m.target, m.text, m.ask_id,
             int(m.urgent), int(m.followup), m.client_msg_id, m.origin)
            for m in fresh
        ],
    )
    if inserted != len(fresh):
        fresh = _drop_retries(conn, fresh)
    if not fresh:
        return fresh
    deliveries = [(r, m.id, m.ts) for m in fresh for r in m.recipients]
    if deliveries:
        _insert_rows(conn, "INSERT INTO deliveries(recipient, message_id, queued_at) VALUES ", 3, deliveries)
    asks = [m for m in fresh if m.kind == "ask"]
    if asks:
        conn.executemany(
            "INSERT INTO asks(id, asker, mode, route, deadline, behalf) VALUES (?,?,?,?,?,?)",
            [(m.id, m.sender, m.ask_mode or "all", m.ask_route, m.ask_deadline, m.ask_behalf) for m in asks],
        )
        conn.executemany(
            "INSERT INTO ask_targets(ask_id, agent) VALUES (?,?)", [(m.id, r) for m in asks for r in m.recipients]
        )
    replies = [m for m in fresh if m.reply_to is not None]
    if replies:
        conn.executemany(
            "UPDATE ask_targets SET reply_id=?, replied_at=? WHERE ask_id=? AND agent=? AND reply_id IS NULL",
            [(m.id, m.ts, *m.reply_to) for m in replies if m.reply_to is not None],
        )
    return fresh


ROWS_PER_STATEMENT = 64
"""Rows one INSERT carries: a batch is a few statements, so the writer's thread gives up and takes
back the interpreter's lock a few times a batch rather than twice a row (the event loop's thread
holds it most of the time, and each hand-over waits for it)."""


def _insert_rows(conn: sqlite3.Connection, head: str, width: int, rows: list[tuple[Any, ...]]) -> int:
    """INSERT `rows` (each `width` values) with `head` (up to `VALUES `), ROWS_PER_STATEMENT a
    statement; returns how many rows were inserted."""
    row_marks = "(" + ",".join("?" * width) + ")"
    inserted = 0
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start: start + ROWS_PER_STATEMENT]
        params = [value for row in chunk for value in row]
        inserted += conn.execute(head + ",".join([row_marks] * len(chunk)), params).rowcount
    return inserted


def _drop_retries(conn: sqlite3.Connection, fresh: list[NewMessage]) -> list[NewMessage]:
    """Some inserts were ignored: those messages were stored before (a client's retry)."""
    keyed = [m for m in fresh if m.client_msg_id]
    marks = ",".join("?" * len(keyed))
    rows = conn.execute(
        "SELECT sender, client_msg_id, id, ts, ask_id, kind, recipients, text FROM messages"
        f" WHERE client_msg_id IN ({marks})",
        [m.client_msg_id for m in keyed],
    ).fetchall()
    stored = {(r[0], r[1]): r[2:] for r in rows}
    kept = []
    for msg in fresh:
        hit = stored.get((msg.sender, msg.client_msg_id)) if msg.client_msg_id else None
        if hit is not None and hit[0] != msg.id:
            msg.id, msg.ts, msg.ask_id = hit[0], hit[1], hit[2]
            msg.duplicate = True
            msg.conflict = not msg.same_as(hit[3], json.loads(hit[4]), hit[5])
        else:
            kept.append(msg)
    return kept


class BatchWriter:
    """A writer connection to pod.db with its own thread, for the group commit and every write of
    several statements: the whole transaction (BEGIN IMMEDIATE, the statements, COMMIT, or ROLLBACK
    on any error) is one function run there, so it costs one hand-over between threads where
    aiosqlite takes one per statement. The transaction ends inside that function, whatever happens
    to the task that waits for it. Writes on it and on `Store.conn` take turns (`Store._lock`)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="podctl-store-commit", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()
        self.conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(conn)` in the writer's thread and return what it returns (or raise what it raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

        def job() -> None:
            try:
                result = fn(self.conn)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting task
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        self._jobs.put(job)
        return await done

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)
