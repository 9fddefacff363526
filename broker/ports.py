"""What the broker needs from the world above it, given to it as small protocols (ports).

The broker knows nothing of tmux or of the CLIs: the process that runs it (orchestrator/
broker_main.py) hands it a `Nudger` that types an agent's wake text into its pane and a
`PaneReader` for pattern rules. Tests and benchmarks hand it their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Nudger(Protocol):
    async def __call__(self, pod: str, agent: str, cli: str) -> str:
        """Wake an idle agent; returns "sent" or "skipped: <reason>". Never message content."""
        ...


class PaneReader(Protocol):
    async def __call__(self, pod: str, agent: str) -> str:
        """The recent text on the agent's screen ("" when there is none)."""
        ...


async def no_nudge(pod: str, agent: str, cli: str) -> str:
    return "skipped: this broker has no way to wake agents"


async def no_pane(pod: str, agent: str) -> str:
    return ""


@dataclass(frozen=True)
class Ports:
    nudge: Nudger = no_nudge
    read_pane: PaneReader = no_pane
