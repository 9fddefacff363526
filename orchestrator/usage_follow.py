"""Following the agents' session files for token usage (run by the supervisor).

Each adapter names where its CLI records usage (`usage_files`) and how to read a line
(`usage_parser`; hooks/usage.py). This reads only what was appended since the position the
broker holds for each file, up to the last complete line, and reports the records with the new
position in one request: a file is never read twice from its start (unless it was replaced or
cut), and a line read again after a crash is stored once (records have keys). A restarted agent
writes a new file, which adds to the same agent's totals.
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
from podctl.hooks.usage import UsageParser, UsageSource
from podctl.pods.spec import PodSpec

log = logging.getLogger("podctl.usage")

READ_CHUNK = 1 << 22
BATCH = 1000
RESCAN_MS = 5000
"""A full look at every agent's files this often even without a file event (a folder made just
before its first file can hide that file from the watcher)."""
RETRY_S = 2.0
PULLED = "usage-pulled"
"""The name a `usage_pull` adapter's position is kept under (no such file exists)."""


@dataclass
class Cursor:
    inode: int = 0
    offset: int = 0
    state: dict[str, Any] = field(default_factory=dict)


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

    async def _call(self, op: str, **args: Any) -> dict[str, Any]:
        if self.client is None:
            self.client = AsyncClient(self.paths.socket, USER, self.paths.read_token(USER))
        return await self.client.call(op, timeout=30.0, **args)

    async def scan(self) -> None:
        """Read what every agent's usage files gained since the last look (and what the adapters
        that keep usage elsewhere, `usage_pull`, have new)."""
        if self.cursors is None:
            files = (await self._call("usage_cursors"))["files"]
            self.cursors = {(f["agent"], f["path"]): Cursor(f["inode"], f["offset"], f["state"]) for f in files}
        for name, agent in self.spec().agents.items():
            adapter = get_adapter(agent.cli)
            files, parser = getattr(adapter, "usage_files", None), getattr(adapter, "usage_parser", None)
            if files is not None and parser is not None:
                for path in _files(files(self.paths.agent_dir(name))):
                    await self.follow(name, path, parser)
            pull = getattr(adapter, "usage_pull", None)
            if pull is not None:
                await self.pull(name, pull)

    async def pull(self, agent: str, pull: Callable[..., Any]) -> None:
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
        parser = make(cursor.state)
        records: list[dict[str, Any]] = []
        offset = cursor.offset
        for line, end in _lines(path, cursor.offset):
            offset = end
            record = _parse(parser, line, f"{path.name}:{end - len(line) - 1}")
            if record is not None:
                records.append(record)
            if len(records) >= BATCH:
                await self._report(agent, path, Cursor(info.st_ino, offset, dict(parser.state)), records)
                records = []
        if offset != cursor.offset or records:
            await self._report(agent, path, Cursor(info.st_ino, offset, dict(parser.state)), records)

    async def _report(self, agent: str, path: Path, cursor: Cursor, records: list[dict[str, Any]]) -> None:
        await self._call("usage_report", of=agent, path=str(path), inode=cursor.inode, offset=cursor.offset,
                         state=cursor.state, records=records)
        assert self.cursors is not None
        self.cursors[(agent, str(path))] = cursor


def _files(sources: list[UsageSource]) -> list[Path]:
    found: list[Path] = []
    for source in sources:
        if source.root.is_dir():
            found += sorted(p for p in source.root.glob(source.pattern) if p.is_file())
    return found


def _lines(path: Path, offset: int) -> Iterator[tuple[bytes, int]]:
    """The complete lines after `offset`, each with the position just past its newline, read a chunk
    at a time (a long history is never held whole); a last line without its newline waits."""
    with path.open("rb") as fh:
        fh.seek(offset)
        pending = b""
        while chunk := fh.read(READ_CHUNK):
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for line in whole:
                offset += len(line) + 1
                yield line, offset


def _parse(parser: UsageParser, line: bytes, where: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    try:
        record = parser.feed(value, where)
    except (TypeError, ValueError, AttributeError) as exc:
        log.warning("usage: cannot read %s: %s", where, exc)
        return None
    return record.as_wire() if record is not None else None
