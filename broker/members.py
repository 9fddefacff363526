"""A pod's member as the broker keeps it in memory (its state, its tools, where it runs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .commits import wakes


def needs_attention(message: Mapping[str, Any]) -> bool:
    """Whether a message (as the wire shows it) wakes an idle recipient."""
    return wakes(message["kind"], bool(message["urgent"]), message["from"])


@dataclass
class Member:
    name: str
    cli: str
    role: str
    state: str = "stopped"
    removed: bool = False
    tools_ready: bool = False
    """Its MCP server (`podctl shim`) has announced itself: a woken model will have the tools."""
    last_wake: str | None = None
    last_wake_ts: float | None = None
    state_ts: float = 0.0
    """When it entered its state."""
    last_activity: float | None = None
    """Its last hook or message: an agent that is busy but silent for long may be stuck."""
    leaving: bool = False
    """Removed from the pod file while busy: it keeps its identity until its turn ends (the supervisor
    removes its window only then), so a hot reload never cuts a turn short."""
    owed_turn: bool = False
    """Its session started with messages that need it in its context (shown by the session_start hook)
    and no turn has run since: a wake now has something to act on."""
    starting: bool = False
    """Its CLI was just (re)started and has not shown it is up (no tool session, no hook yet): shown
    as `starting`, not `idle`."""
    site: str | None = None
    """Where it runs, in a pod across machines (broker/sites.py)."""
    remote: bool = False
    """It runs at another site: its state is what its site last reported (`reported_at`); never woken here."""
    reported_at: float | None = None
    unread: int = 0
    """A remote member's unread messages, as its site reported them."""
