"""Following the agents' session files for token usage (run by the supervisor).

Each adapter names where its CLI records usage (`usage_files`) and how to read a line
(`usage_parser`; hooks/usage.py). This reads only what was appended since the position the
broker holds for each file, up to the last complete line, and reports the records with the new
position in one request: a file is never read twice from its start (unless it was replaced or
cut), and a line read again after a crash is stored once (records have keys). A restarted agent
writes a new file, which adds to the same agent's totals.

A bad line costs only itself: one that is not JSON, that its parser cannot read, whose record is
out of range (pods/usage.py) or that is longer than MAX_LINE_BYTES is skipped, with one log line
per file and scan, and the rest is counted. An over-long line is never held whole nor read twice:
it is passed as it is read, across scans if its end is not written yet (SKIPPING in the state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.broker.client import AsyncClient
from podctl.broker.paths import USER, PodPaths
from podctl.hooks.adapter import get_adapter
from podctl.hooks.usage import UsageParser, UsageRecord, UsageSource
from podctl.pods.spec import PodSpec

log = logging.getLogger("podctl.usage")

READ_CHUNK = 1 << 22
MAX_LINE_BYTES = 8 << 20
"""The longest line read: a model request's line is far shorter (a CLI's output is capped well below)."""
SKIPPING = "podctl_skipping_line"
"""Kept in a file's reader state while an over-long line is passed and its end is not written yet."""
BATCH = 1000
RESCAN_MS = 5000
"""A full look at every agent's files this often even without a file event (a folder made just
before its first file can hide that file from the watcher)."""
RETRY_S = 2.0
Pull = Callable[[Path, dict[str, Any]], tuple[list[UsageRecord], dict[str, Any]]]
"""An adapter's `usage_pull`."""
PULLED = "usage-pulled"
"""The name a `usage_pull` adapter's position is kept under (no such file exists)."""


@dataclass
class Cursor:
    inode: int = 0
    offset: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    """The parser's state (what it remembers between lines)."""
    skipping: bool = False
    """`offset` is inside an over-long line: what follows up to its newline is passed."""

    @classmethod
    def stored(cls, inode: int, offset: int, state: dict[str, Any]) -> Cursor:
        state = dict(state)
        return cls(inode, offset, state, bool(state.pop(SKIPPING, False)))

    def wire_state(self) -> dict[str, Any]:
        return {**self.state, SKIPPING: True} if self.skipping else self.state


class UsageFollower:
    def __init__(self, paths: PodPaths, spec: Callable[[], PodSpec]) -> None:
        self.paths = paths
        self.spec = spec
        self.cursors: dict[tuple[str, str], Cursor] | None = None
        self.client: AsyncClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        from watchfiles import awatch

        while not stop.is_set():
            try:
                await self.scan()
                async for _ in awatch(
                    self.paths.agents, stop_event=stop, debounce=200, step=50, rust_timeout=RESCAN_MS,
                    yield_on_timeout=True, watch_filter=lambda _change, path: path.endswith((".jsonl", ".db-wal")),
                ):
                    await self.scan()
            except (OSError, wire.BrokerError, wire.BrokerUnavailable, TimeoutError) as exc:
                log.info("usage: %s; trying again", exc)
                self.cursors = None
                await self.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=RETRY_S)
        await self.close()

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    def _client(self) -> AsyncClient:
        if self.client is None:
            self.client = AsyncClient(self.paths.socket, USER, self.paths.read_token(USER))
        return self.client

    async def scan(self) -> None:
        """Read what every agent's usage files gained since the last look (and what the adapters
        that keep usage elsewhere, `usage_pull`, have new)."""
        if self.cursors is None:
            files = (await self._client().call("usage_cursors", timeout=30.0))["files"]
            self.cursors = {(f["agent"], f["path"]): Cursor.stored(f["inode"], f["offset"], f["state"]) for f in files}
        for name, agent in self.spec().local_agents(self.paths.read_site()).items():
            adapter = get_adapter(agent.cli)
            for path in _files(adapter.usage_files(self.paths.agent_dir(name))):
                await self.follow(name, path, adapter.usage_parser)
            await self.pull(name, adapter.usage_pull)

    async def pull(self, agent: str, pull: Pull) -> None:
        """Ask the adapter for new records until it has none; its position is kept like a file's,
        under the name PULLED in the agent's folder."""
        assert self.cursors is not None
        agent_dir = self.paths.agent_dir(agent)
        source = agent_dir / PULLED
        while True:
            known = self.cursors.get((agent, str(source)))
            state = known.state if known else {}
            records, new_state = pull(agent_dir, state)  # a short read-only query of the CLI's own store
            if not records and new_state == state:
                return
            await self._report(agent, source, Cursor(0, 0, dict(new_state)), [r.as_wire() for r in records])

    async def follow(self, agent: str, path: Path, make: Callable[[dict[str, Any]], UsageParser]) -> None:
        assert self.cursors is not None
        try:
            info = path.stat()
        except OSError:
            return
        key = (agent, str(path))
        cursor = self.cursors.get(key) or Cursor(inode=info.st_ino)
        if cursor.inode != info.st_ino or info.st_size < cursor.offset:
            cursor = Cursor(inode=info.st_ino)  # replaced or cut: read it again; keys keep records from counting twice
        if info.st_size == cursor.offset:
            return
        parser = make(dict(cursor.state))
        lines = Lines(path, cursor.offset, cursor.skipping)
        records: list[dict[str, Any]] = []
        bad: list[str] = []
        for line in lines.read():
            if line is None:
                await asyncio.sleep(0)  # between chunks: a long read never holds up the supervisor's loop
                continue
            record, problem = _parse(parser, line, f"{path.name}:{lines.offset - len(line) - 1}")
            if record is not None:
                records.append(record)
            elif problem is not None:
                bad.append(problem)
            if len(records) >= BATCH:
                await self._report(agent, path, lines.cursor(info.st_ino, parser), records)
                records = []
        bad += [f"longer than {MAX_LINE_BYTES:,} bytes"] * lines.skipped
        if bad:
            log.warning("usage: skipped %d line%s of %s (%s); the rest is counted", len(bad),
                        "s" if len(bad) != 1 else "", path, "; ".join(sorted(set(bad))))
        new = lines.cursor(info.st_ino, parser)
        if (new.offset, new.skipping) != (cursor.offset, cursor.skipping) or records:
            await self._report(agent, path, new, records)

    async def _report(self, agent: str, path: Path, cursor: Cursor, records: list[dict[str, Any]]) -> None:
        await self._client().call("usage_report", timeout=30.0, of=agent, path=str(path), inode=cursor.inode,
                                  offset=cursor.offset, state=cursor.wire_state(), records=records)
        assert self.cursors is not None
        self.cursors[(agent, str(path))] = cursor


class Lines:
    """The complete lines of a file after a position, read a chunk at a time (a long history is
    never held whole); a last line without its newline waits for the next read. A line longer
    than MAX_LINE_BYTES is passed as it is read, never held: `skipped` counts them, and `skipping`
    says the read ended inside one (its end not written yet)."""

    def __init__(self, path: Path, offset: int, skipping: bool) -> None:
        self.path = path
        self.offset = offset
        """Where the next read starts: past the last line returned, or past the part of an over-long line passed."""
        self.skipping = skipping
        self.skipped = 0

    def read(self) -> Iterator[bytes | None]:
        """Each complete line; None after each chunk (a moment to let others run)."""
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            pending = b""
            while chunk := fh.read(READ_CHUNK):
                if self.skipping:
                    end = chunk.find(b"\n")
                    if end < 0:
                        self.offset += len(chunk)
                        yield None
                        continue
                    self.offset += end + 1
                    self.skipping = False
                    chunk = chunk[end + 1:]
                *whole, pending = (pending + chunk).split(b"\n")
                for line in whole:
                    self.offset += len(line) + 1
                    yield line
                if len(pending) > MAX_LINE_BYTES:
                    self.offset += len(pending)
                    self.skipping, self.skipped, pending = True, self.skipped + 1, b""
                yield None

    def cursor(self, inode: int, parser: UsageParser) -> Cursor:
        return Cursor(inode, self.offset, dict(parser.state), self.skipping)


def _files(sources: list[UsageSource]) -> list[Path]:
    found: list[Path] = []
    for source in sources:
        if source.root.is_dir():
            found += sorted(p for p in source.root.glob(source.pattern) if p.is_file())
    return found


def _parse(parser: UsageParser, line: bytes, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """The line's record, or why it has none that counts (None: a line without usage, not a problem)."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None, "not JSON" if line.strip() else None
    if not isinstance(value, dict):
        return None, None
    try:
        record = parser.feed(value, where)
    except Exception as exc:  # noqa: BLE001 - an adapter's parser may fail on any odd line: that line is skipped
        return None, f"unreadable: {type(exc).__name__}: {exc}"[:200]
    if record is None:
        return None, None
    problem = record.problem()
    return (None, problem) if problem else (record.as_wire(), None)
