"""The pod's durable store: one SQLite file (WAL) through aiosqlite, schema versioned by migrations.

Writes that acknowledge something to a client (a message, a reply) go through `commit_message`,
which commits before returning: the broker answers only after it. Concurrent writers are
grouped into one transaction (group commit), which is what makes thousands of durable
messages a second possible on one core. WAL with `synchronous=NORMAL` survives `kill -9` of the
broker (every committed transaction is in the WAL file in the OS's hands); only a power cut can
lose the last transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, Protocol

import aiosqlite

from .queries import (
    ASK_PREVIEW_CHARS,
    EXPIRED_LISTED_S,
    MAX_POINTERS,
    MESSAGE_COLUMNS,
    NEEDS_ATTENTION,
    PAGE_BYTES,
    POINTER,
    SQL_AGENTS,
    SQL_ATTENTION,
    SQL_HISTORY,
    SQL_INBOX,
    SQL_LAST_MESSAGE,
    SQL_LAST_WAKES,
    SQL_OPEN_ASKS,
    SQL_OPEN_TO,
    SQL_SEEN_OPEN_ASKS,
    SQL_UNSEEN,
    SQL_UNSEEN_COUNTS,
    Page,
    StoreError,
    StoreLost,
    attention_map,
    deliveries_map,
    deliveries_sql,
    message_row,
    open_ask_row,
    overview,
    page,
)
from .wire import SYSTEM_SENDER

log = logging.getLogger("podctl.broker.store")

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE agents(
        name TEXT PRIMARY KEY,
        cli TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'stopped',
        state_ts REAL NOT NULL DEFAULT 0,
        removed INTEGER NOT NULL DEFAULT 0,
        read_cursor INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL,
        recipients TEXT NOT NULL,
        target TEXT,
        text TEXT NOT NULL,
        ask_id INTEGER,
        urgent INTEGER NOT NULL DEFAULT 0,
        followup INTEGER NOT NULL DEFAULT 0,
        client_msg_id TEXT
    );
    CREATE UNIQUE INDEX messages_client_id ON messages(sender, client_msg_id)
        WHERE client_msg_id IS NOT NULL;
    CREATE INDEX messages_ts ON messages(ts);
    CREATE TABLE deliveries(
        recipient TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        queued_at REAL NOT NULL,
        injected_at REAL,
        read_at REAL,
        claim TEXT,
        claimed_at REAL,
        notice_at REAL,
        PRIMARY KEY(recipient, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_message ON deliveries(message_id);
    CREATE TABLE asks(
        id INTEGER PRIMARY KEY,
        asker TEXT NOT NULL,
        mode TEXT NOT NULL DEFAULT 'all',
        route TEXT,
        deadline REAL
    );
    CREATE TABLE ask_targets(
        ask_id INTEGER NOT NULL,
        agent TEXT NOT NULL,
        reply_id INTEGER,
        replied_at REAL,
        PRIMARY KEY(ask_id, agent)
    ) WITHOUT ROWID;
    CREATE TABLE state_changes(
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        state TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE TABLE wakes(
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        ts REAL NOT NULL,
        result TEXT NOT NULL
    );
    """,
    # 2: a message too large for a hook is shown to the model as a pointer once (pointed_at); read
    # cursors live in memory (the column was never read).
    """
    ALTER TABLE deliveries ADD COLUMN pointed_at REAL;
    ALTER TABLE agents DROP COLUMN read_cursor;
    """,
    # 3: what produced a message, when it was not its sender's own doing ("rule:<name>", "handoff").
    """
    ALTER TABLE messages ADD COLUMN origin TEXT;
    """,
    # 4: token usage per model request of each agent (read from its CLI's session files, once per
    # key), how far each file was read, the pricing and limits last applied (for a pod that is
    # down), and the budget notices already given.
    """
    CREATE TABLE usage(
        agent TEXT NOT NULL,
        key TEXT NOT NULL,
        model TEXT NOT NULL,
        ts REAL NOT NULL,
        input INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        output INTEGER NOT NULL,
        reasoning INTEGER NOT NULL,
        PRIMARY KEY(agent, key)
    ) WITHOUT ROWID;
    CREATE INDEX usage_ts ON usage(ts);
    CREATE TABLE usage_files(
        agent TEXT NOT NULL,
        path TEXT NOT NULL,
        inode INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY(agent, path)
    ) WITHOUT ROWID;
    CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE budget_notices(key TEXT PRIMARY KEY, ts REAL NOT NULL);
    """,
    # 5: what outlives the broker's process: each rule's rounds, last firing, open ask and the git
    # trees its diffs start from; the agent a rule's ask was for (its late replies and follow-ups go
    # to it); when an ask was looked at after its deadline (its asker told if answers were missing;
    # asks already past it are not told again); the role each agent's model was last told.
    """
    CREATE TABLE rule_state(
        name TEXT PRIMARY KEY,
        rounds INTEGER NOT NULL DEFAULT 0,
        last_fired REAL NOT NULL DEFAULT 0,
        open_ask INTEGER
    );
    CREATE TABLE rule_baselines(
        rule TEXT NOT NULL,
        agent TEXT NOT NULL,
        workdir TEXT NOT NULL,
        tree TEXT,
        PRIMARY KEY(rule, agent, workdir)
    ) WITHOUT ROWID;
    ALTER TABLE asks ADD COLUMN behalf TEXT;
    ALTER TABLE asks ADD COLUMN expiry_checked REAL;
    UPDATE asks SET expiry_checked = deadline
        WHERE deadline IS NOT NULL AND deadline < (julianday('now') - 2440587.5) * 86400.0;
    ALTER TABLE agents ADD COLUMN told_role TEXT;
    """,
    # 6: attention (broker/attention.py): why an agent is blocked or failed, as JSON, so a restarted
    # broker still shows it; and the requests answered `always` (never asked again for the same tool
    # and detail).
    """
    CREATE TABLE attention(agent TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE always_allowed(
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        detail TEXT NOT NULL,
        by TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY(agent, tool, detail)
    ) WITHOUT ROWID;
    """,
    # 7: a pod across machines (broker/sites.py, docs/sites.md): messages for other sites wait in an outbox
    # (written in the message's own transaction) until the bridge's publish is acknowledged; messages from
    # other sites are stored once per (origin site, origin id); what a recipient here did with them (queued,
    # injected, read) is a receipt owed to their site, kept by triggers in the transaction that changed it.
    """
    CREATE TABLE site_outbox(
        message_id INTEGER NOT NULL,
        site TEXT NOT NULL,
        sent_at REAL,
        arrived_at REAL,
        error TEXT,
        PRIMARY KEY(message_id, site)
    ) WITHOUT ROWID;
    CREATE INDEX site_outbox_unsent ON site_outbox(message_id) WHERE sent_at IS NULL;
    CREATE TABLE site_imports(
        origin_site TEXT NOT NULL,
        origin_id INTEGER NOT NULL,
        local_id INTEGER NOT NULL,
        PRIMARY KEY(origin_site, origin_id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX site_imports_local ON site_imports(local_id);
    CREATE TABLE site_receipts(
        message_id INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        rank INTEGER NOT NULL,
        sent_rank INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(message_id, recipient)
    ) WITHOUT ROWID;
    CREATE INDEX site_receipts_due ON site_receipts(message_id) WHERE rank > sent_rank;
    CREATE TRIGGER site_receipt_owed AFTER UPDATE OF injected_at, read_at ON deliveries
        WHEN EXISTS (SELECT 1 FROM site_receipts WHERE message_id = NEW.message_id AND recipient = NEW.recipient)
    BEGIN
        UPDATE site_receipts SET rank = max(rank, CASE WHEN NEW.read_at IS NOT NULL THEN 3 ELSE 2 END)
            WHERE message_id = NEW.message_id AND recipient = NEW.recipient;
    END;
    CREATE TRIGGER site_message_pruned AFTER DELETE ON messages
    BEGIN
        DELETE FROM site_outbox WHERE message_id = OLD.id;
        DELETE FROM site_receipts WHERE message_id = OLD.id;
    END;
    """,
]


class BatchHook(Protocol):
    """Writes that belong in a batch of messages' own transaction (broker/sites.py: the outbox, imports)."""

    def before(self, conn: sqlite3.Connection, batch: list[NewMessage]) -> list[NewMessage]:
        """The messages to insert; the others are marked `duplicate` (with the stored id). Run in the
        BatchWriter's thread, inside the batch's transaction."""
        ...

    def after(self, conn: sqlite3.Connection, fresh: list[NewMessage]) -> None:
        """Called once `fresh` is inserted, before the transaction commits (in the same thread)."""
        ...


def _first(row: Any) -> Any:
    """The first column of a row SQLite must return (an aggregate's)."""
    if row is None:
        raise StoreError("the pod's store returned no row where one is always expected")
    return row[0]


def _within_budget(rows: list[Any], max_bytes: int) -> list[Any]:
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


@dataclass
class RuleRecord:
    """A rule's state as stored: its rounds, last firing, open ask, and the git tree per (agent, workdir)
    its next diff starts from (None: from the agent's starting commit)."""

    rounds: int = 0
    last_fired: float = 0.0
    open_ask: int | None = None
    baselines: dict[tuple[str, str], str | None] = field(default_factory=dict)


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


def _in_transaction(body: Callable[[sqlite3.Connection], None], conn: sqlite3.Connection) -> None:
    """Run `body` in one write transaction that ends here: COMMIT, or ROLLBACK on any error (run in
    the BatchWriter's thread)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")  # only an earlier ROLLBACK that failed leaves one: never build on it
    conn.execute("BEGIN IMMEDIATE")
    try:
        body(conn)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _statements(statements: Sequence[tuple[str, Sequence[Any]]], conn: sqlite3.Connection) -> None:
    for sql, params in statements:
        conn.execute(sql, tuple(params))


def _insert_batch(
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
    cur = conn.executemany(
        "INSERT OR IGNORE INTO messages(id, ts, sender, kind, recipients, target, text, ask_id, urgent, followup,"
        " client_msg_id, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (m.id, m.ts, m.sender, m.kind, json.dumps(m.recipients), m.target, m.text, m.ask_id,
             int(m.urgent), int(m.followup), m.client_msg_id, m.origin)
            for m in fresh
        ],
    )
    if cur.rowcount != len(fresh):
        fresh = _drop_retries(conn, fresh)
    if not fresh:
        return fresh
    deliveries = [(r, m.id, m.ts) for m in fresh for r in m.recipients]
    if deliveries:
        conn.executemany("INSERT INTO deliveries(recipient, message_id, queued_at) VALUES (?,?,?)", deliveries)
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


class Store:
    """The store's writes and the broker's reads (the read queries themselves are in queries.py,
    shared with readonly.py; the usage tables' SQL is in usage_store.py).

    Two connections: `conn` writes (serialized by `_lock`, grouped by `commit_message`), `rconn`
    reads. In WAL mode the reader only ever sees committed data, so nothing is shown to a
    recipient before it is durable, and reads never wait behind a write transaction.
    """

    def __init__(self, conn: aiosqlite.Connection, rconn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.rconn = rconn
        self.path = Path()
        self._inode = 0
        self.lost: str | None = None
        self.on_lost: Callable[[str], None] | None = None
        self._pending: list[tuple[NewMessage, asyncio.Future[NewMessage]]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._batches: BatchWriter | None = None
        self.hooks: list[BatchHook] = []

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating or migrating) the store; a store that cannot be used raises StoreError
        with the reason, and leaves no connection thread behind."""
        conns: list[aiosqlite.Connection] = []
        try:
            conn = await aiosqlite.connect(path, isolation_level=None)
            conns.append(conn)
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=5000")
            await cls._migrate_conn(conn)
            rconn = await aiosqlite.connect(path, isolation_level=None)
            conns.append(rconn)
            await rconn.execute("PRAGMA busy_timeout=5000")
            await rconn.execute("PRAGMA query_only=ON")
            store = cls(conn, rconn)
            store._batches = BatchWriter(path)
            store.path = path
            store._inode = os.stat(path).st_ino
            async with conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name='messages'), 0),"
                " coalesce((SELECT max(id) FROM messages), 0))"
            ) as cur:
                store._next_id = _first(await cur.fetchone())
            return store
        except (sqlite3.Error, OSError, StoreError) as exc:
            for conn in conns:
                try:
                    await asyncio.wait_for(conn.close(), timeout=5)
                except Exception:  # noqa: BLE001 - closing what failed to open; the cause is reported below
                    pass
            if isinstance(exc, StoreError):
                raise
            raise StoreError(
                f"cannot use the pod's store {path}: {exc}. If the disk is full, free space and try again;"
                f" if the file is damaged, move it away (its history is lost) and run `podctl up` again"
            ) from exc

    def check_file(self) -> None:
        """Refuse to go on if pod.db was deleted or replaced: acks would go into an unlinked file."""
        if self.lost is not None:
            raise StoreLost(self.lost)
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if inode != self._inode:
            self._give_up(
                f"the pod's store {self.path} was deleted or replaced while the broker ran; nothing more is"
                " acknowledged: the broker stops (the supervisor or `podctl up` starts it on a new store)"
            )

    def _give_up(self, reason: str) -> NoReturn:
        """Acknowledge nothing more and stop the broker (`on_lost`), which is then started again."""
        self.lost = reason
        if self.on_lost is not None:
            self.on_lost(reason)
        raise StoreLost(reason)

    async def close(self) -> None:
        if self._flush_task is not None:
            await asyncio.wait_for(asyncio.shield(self._flush_task), timeout=10)
        if self._batches is not None:
            self._batches.close()
        await self.rconn.close()
        await self.conn.close()

    @staticmethod
    async def _migrate_conn(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            version = int(_first(await cur.fetchone()))
        if version > len(MIGRATIONS):
            raise StoreError(
                f"pod.db has schema version {version}, newer than this podctl knows ({len(MIGRATIONS)}): upgrade podctl"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    # -- writes -----------------------------------------------------------------

    async def commit_message(self, msg: NewMessage) -> NewMessage:
        """Commit one message (grouped with concurrent ones); returns once it is durable."""
        fut: asyncio.Future[NewMessage] = asyncio.get_running_loop().create_future()
        self._pending.append((msg, fut))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            async with self._lock:
                failed = await self._commit_batch(batch)
                if failed is not None and len(batch) > 1 and not isinstance(failed, StoreLost):
                    # One bad message must not fail the others: commit them one by one.
                    for one in batch:
                        await self._commit_batch([one])
                elif failed is not None:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(failed)

    async def _commit_batch(self, batch: list[tuple[NewMessage, asyncio.Future[NewMessage]]]) -> Exception | None:
        """Commit `batch` in one transaction and resolve its futures; on failure roll back and return
        the error (a single message's future gets it)."""
        next_id = self._next_id
        try:
            await self._in_writer(partial(_insert_batch, [msg for msg, _ in batch], self._assign_ids, list(self.hooks)))
        except Exception as exc:  # noqa: BLE001 - reported to the callers whose messages failed
            self._next_id = next_id
            for msg, _ in batch:
                msg.id, msg.duplicate = None, False
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return exc
        except BaseException:
            # Cancelled (the broker stops): COMMIT may have run, so the ids stay taken; nobody is left waiting.
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(StoreError("the broker stopped before the message was committed: send it again"))
            raise
        for msg, fut in batch:
            if not fut.done():
                fut.set_result(msg)
        return None

    @contextlib.asynccontextmanager
    async def _immediate(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction on the writer connection: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK
        on any error (COMMIT's own included) and on cancellation. The caller holds `_lock`.

        aiosqlite runs the statements in order in one thread, and a cancelled `await` may still have
        run its statement (BEGIN included): so BEGIN is inside the `try`, and on every way out a
        ROLLBACK is queued behind whatever the body queued. The transaction always ends."""
        self.check_file()
        try:
            await self._begin()
            yield self.conn
            await self.conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):  # no transaction left, or the connection closed
                await self.conn.execute("ROLLBACK")
            raise

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE; a writer found inside a transaction nobody ended is rolled back first
        (logged); if even that fails, the store is given up (`lost`), so the broker stops and is
        started again rather than refusing every write."""
        try:
            await self.conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError:
            if not self.conn.in_transaction:
                raise
        await self._end_stray()
        try:
            await self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._stuck(exc)

    async def _in_writer(self, body: Callable[[sqlite3.Connection], None]) -> None:
        """Run `body` in one transaction on the BatchWriter (one hand-over); the caller holds `_lock`."""
        self.check_file()
        if self.conn.in_transaction:
            await self._end_stray()
        if self._batches is None:
            raise StoreError(f"the pod's store {self.path} is closed")
        await self._batches.run(partial(_in_transaction, body))

    async def _end_stray(self) -> None:
        """Roll back a transaction of the writer that nobody ended (logged); give the store up if that fails."""
        log.warning("the store's writer was found inside a transaction that never ended: rolled it back")
        try:
            await self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self._stuck(exc)

    def _stuck(self, exc: sqlite3.Error) -> NoReturn:
        self._give_up(f"the pod's store {self.path} is stuck inside a transaction ({exc}): the broker stops"
                      " (the supervisor or `podctl up` starts it again)")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction of its own (serialized with every other write)."""
        async with self._lock, self._immediate() as conn:
            yield conn

    def _assign_ids(self, batch: list[NewMessage]) -> list[NewMessage]:
        """Give each new message its id (the broker is the store's only writer, so every table can
        be written with one `executemany`); returns the messages to insert. A repeat, within the
        batch, of a (sender, client_msg_id) is a retry: it gets the first one's id and is not inserted."""
        fresh: list[NewMessage] = []
        seen: dict[tuple[str, str], NewMessage] = {}
        for msg in batch:
            key = (msg.sender, msg.client_msg_id) if msg.client_msg_id else None
            if key is not None and key in seen:
                first = seen[key]
                msg.id, msg.ts, msg.ask_id, msg.duplicate = first.id, first.ts, first.ask_id, True
                msg.conflict = not msg.same_as(first.kind, first.recipients, first.text)
                continue
            self._next_id += 1
            msg.id = self._next_id
            if msg.kind == "ask":
                msg.ask_id = msg.id
            if key is not None:
                seen[key] = msg
            fresh.append(msg)
        return fresh

    async def _write(self, sql: str, params: Iterable[Any] = ()) -> int:
        """One small statement in its own transaction; returns the rows changed."""
        async with self.transaction() as conn:
            cur = await conn.execute(sql, tuple(params))
            count = cur.rowcount
            await cur.close()
        return count

    async def _write_returning(self, sql: str, params: Iterable[Any] = ()) -> list[int]:
        """One statement ending in `RETURNING <an integer column>`, run and read in one step of the
        writer's thread: SQLite commits a lone statement itself (autocommit), so it is one hand-over
        to that thread instead of three, and no cancellation can leave it half done. A writer found
        inside a transaction nobody ended takes the explicit path, which rolls that back first."""
        async with self._lock:
            if not self.conn.in_transaction:
                self.check_file()
                rows = await self.conn.execute_fetchall(sql, tuple(params))
                return sorted(int(r[0]) for r in rows)
            async with self._immediate() as conn:
                rows = await conn.execute_fetchall(sql, tuple(params))
        return sorted(int(r[0]) for r in rows)

    async def _write_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Statements in one transaction, in one hand-over to the BatchWriter's thread (a busy/idle
        change, at every hook, is two)."""
        async with self._lock:
            await self._in_writer(partial(_statements, list(statements)))

    async def _fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        """Run a read and fetch its rows in one step of the reader's thread (one hand-over, not three)."""
        return list(await self.rconn.execute_fetchall(sql, tuple(params)))

    async def _fetchone(self, sql: str, params: Iterable[Any] = ()) -> Any:
        """The first row of a read that returns one row at most (an aggregate, a key, LIMIT 1)."""
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # -- agents -------------------------------------------------------------------

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

    # -- reads --------------------------------------------------------------------

    async def unseen(self, agent: str, limit: int) -> Page:
        """The agent's messages that no hook injected and no read returned yet."""
        return page(await self._fetchall(SQL_UNSEEN, (agent, limit + 1, PAGE_BYTES)), limit)

    async def inbox(self, agent: str, since: int, limit: int) -> Page:
        return page(await self._fetchall(SQL_INBOX, (agent, since, limit + 1, PAGE_BYTES)), limit)

    async def mark_read(self, agent: str, ids: list[int], now: float) -> list[int]:
        """Mark messages read; returns the ones that were not read before."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return await self._write_returning(
            f"UPDATE deliveries SET read_at=? WHERE recipient=? AND read_at IS NULL AND message_id IN ({marks})"
            " RETURNING message_id",
            (now, agent, *ids),
        )

    async def claim(
        self, agent: str, now: float, lease_s: float, *, max_bytes: int, max_count: int, attention_only: bool = False
    ) -> tuple[str | None, list[dict[str, Any]], list[dict[str, Any]], int]:
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
            rows = _within_budget(fitting[:max_count], max_bytes)
            oversized = [r for r in found if r[-1] > max_bytes]
            big = oversized[:MAX_POINTERS]
            if len(found) < window:
                more = len(fitting) - len(rows) + len(oversized) - len(big)
            else:
                async with conn.execute(f"SELECT count(*){claimable}{eligible}", params) as cur:
                    more = int(_first(await cur.fetchone())) - len(rows) - len(big)
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

    async def deliveries_of(self, message_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        if not message_ids:
            return {}
        return deliveries_map(await self._fetchall(deliveries_sql(len(message_ids)), tuple(message_ids)))

    async def history(self, since: int, limit: int) -> Page:
        return page(await self._fetchall(SQL_HISTORY, (since, limit + 1, PAGE_BYTES)), limit)

    async def overview(self) -> dict[str, Any]:
        """What `status` shows of the store: agents, unseen counts, the last message, the last wakes."""
        return overview(
            await self._fetchall(SQL_AGENTS), await self._fetchall(SQL_UNSEEN_COUNTS),
            await self._fetchone(SQL_LAST_MESSAGE), await self._fetchall(SQL_LAST_WAKES),
        )

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

    async def seen_open_asks(self, agent: str, now: float, limit: int) -> list[tuple[dict[str, Any], int]]:
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

    # -- rules and roles: what outlives the broker's process -----------------------------------

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

    async def open_asks(self, now: float, limit: int) -> list[dict[str, Any]]:
        """Asks still waiting for an answer, newest first (queries.SQL_OPEN_ASKS)."""
        rows = await self._fetchall(SQL_OPEN_ASKS, (ASK_PREVIEW_CHARS, now - EXPIRED_LISTED_S, limit))
        return [open_ask_row(r) for r in rows]

    async def messages_by_id(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self._fetchall(f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id IN ({marks}) ORDER BY m.id", tuple(ids))
        return [message_row(r) for r in rows]

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

    async def conversation_of(self, agent: str, limit: int) -> list[dict[str, Any]]:
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
