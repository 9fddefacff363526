"""Reading token usage from what a CLI records on disk: the record every adapter's parser yields.

An adapter that can report usage overrides `usage_files(agent_dir)` (the folders and glob patterns
of its session files) and `usage_parser(state)` (an object whose `feed(line, where)` turns one JSON
line into a `UsageRecord` or None); a CLI that keeps usage elsewhere overrides `usage_pull(agent_dir,
state)` instead (new records and the new state); `Adapter`'s defaults (hooks/adapter.py) report
none. The supervisor follows the files (orchestrator/usage_follow.py); the broker stores each
record once per agent by its `key`, so a line read twice (or a record a CLI writes twice) is
counted once. Numbers are normalised to pods/usage.py's meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from podctl.pods.usage import record_problem


@dataclass(frozen=True)
class UsageRecord:
    key: str
    """Unique per request within one agent (the CLI's response or message id)."""
    model: str
    ts: float
    input: int
    cached: int
    output: int
    reasoning: int

    def as_wire(self) -> dict[str, Any]:
        return {"key": self.key, "model": self.model, "ts": self.ts, "input": self.input, "cached": self.cached,
                "output": self.output, "reasoning": self.reasoning}

    def problem(self) -> str | None:
        """Why the store would refuse it (pods/usage.py's ranges), or None."""
        return record_problem(self.as_wire())


class UsageParser(Protocol):
    state: dict[str, Any]
    """What it must remember between lines of one file (Codex: the model of the turn); JSON-able."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        """The usage in one line, if any; `where` (file:offset) names the line for records without an id."""


@dataclass
class UsageSource:
    root: Path
    pattern: str
    """A glob under `root` (`**` for any depth)."""


@dataclass
class StatelessParser:
    """Base of the parsers that need no memory between lines."""

    state: dict[str, Any] = field(default_factory=dict)


class NoUsage(StatelessParser):
    """The parser of an adapter that names no usage files: no line holds usage."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        return None


def count(value: Any) -> int:
    """A token count from a CLI's JSON: a non-negative int, anything else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def timestamp(value: Any, fallback: float) -> float:
    """An ISO-8601 time (`2026-11-25T14:30:54.467Z`) as epoch seconds; `fallback` when there is none."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value) / 1000 if value > 1e11 else float(value)
    return fallback


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
