"""A write transaction always ends (COMMIT or ROLLBACK), whatever cancels the task that runs it.

aiosqlite runs each statement in its own thread: a cancelled `await` may still have executed its
statement (a BEGIN included), so a write cancelled at the wrong moment used to leave the writer
inside a transaction and every later write failed with "cannot start a transaction within a
transaction" until the broker was killed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from podctl.broker.store import NewMessage, Store

Write = Callable[[Store], Awaitable[object]]

WRITES: dict[str, Write] = {
    "set_state (two statements)": lambda s: s.set_state("a", "busy", 1.0),
    "record_wake (one statement)": lambda s: s.record_wake("a", 1.0, "woke"),
    "mark_read (RETURNING)": lambda s: s.mark_read("a", [1], 2.0),
    "claim (read, then update)": lambda s: s.claim("a", 3.0, 30.0, max_bytes=1000, max_count=5),
}


async def open_store(path: Path) -> Store:
    store = await Store.open(path)
    await store.sync_agents({"a": ("script", ""), "b": ("script", "")})
    await store.commit_message(NewMessage(sender="b", kind="tell", recipients=["a"], text="hello"))
    return store


async def consistent(store: Store) -> None:
    """Each state change wrote both of its rows or neither, and a new write goes through."""
    rows = await store._fetchall("SELECT (SELECT count(*) FROM state_changes), (SELECT state FROM agents WHERE name='a')")
    changes, state = rows[0]
    assert (changes, state) in ((0, "stopped"), (1, "busy")), (changes, state)
    await store.record_wake("b", 9.0, "probe")
    msg = await store.commit_message(NewMessage(sender="a", kind="tell", recipients=["b"], text="after"))
    assert msg.id is not None


@pytest.mark.parametrize("name", list(WRITES))
def test_a_write_cancelled_at_any_point_leaves_no_transaction_open(tmp_path: Path, name: str) -> None:
    async def scenario() -> None:
        for steps in range(12):
            store = await open_store(tmp_path / f"pod-{steps}.db")
            try:
                task = asyncio.ensure_future(WRITES[name](store))
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await asyncio.wait_for(consistent(store), timeout=10)
                assert not store.conn.in_transaction
            finally:
                await store.close()

    asyncio.run(scenario())


def test_a_store_found_inside_a_transaction_rolls_it_back_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        store = await open_store(tmp_path / "pod.db")
        try:
            await store.conn.execute("BEGIN IMMEDIATE")
            await store.conn.execute("INSERT INTO wakes(agent, ts, result) VALUES ('a', 0, 'half-done')")
            with caplog.at_level(logging.WARNING):
                await store.set_state("a", "busy", 1.0)
            await store.record_wake("a", 2.0, "woke")
            assert not store.conn.in_transaction
        finally:
            await store.close()

    asyncio.run(scenario())
    db = sqlite3.connect(tmp_path / "pod.db")
    assert db.execute("SELECT result FROM wakes ORDER BY id").fetchall() == [("woke",)], "the stray transaction was rolled back"
    assert db.execute("SELECT state FROM agents WHERE name='a'").fetchone() == ("busy",)
    assert "inside a transaction" in caplog.text
