"""What the broker needs from the world above it, given to it as small protocols (ports).

The broker knows nothing of tmux or of the CLIs: the process that runs it (orchestrator/
broker_main.py) hands it a `Nudger` that types an agent's wake text into its pane, a
`PaneReader` for pattern rules, a `ScreenReader` that reads what an agent's screen says it waits
for (its adapter's signs: a login, a dialog, an error), and a `Notifier` that tells a person (a
command, the terminal bell). Tests and benchmarks hand it their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .records import AttentionKind

WakeOutcome = Literal["sent", "woken", "skipped", "failed"]
"""What became of a wake, as `status` shows an agent's last one: the nudge was `sent`, it `woken` the
agent (its turn started), it was `skipped` for now (the pane was not ready: tried again), or it
`failed` (given up)."""


@dataclass(frozen=True)
class Wake:
    """A wake's outcome and why (`skipped` and `failed` say why); shown and stored as `outcome: why`."""

    outcome: WakeOutcome
    why: str = ""

    def __str__(self) -> str:
        return f"{self.outcome}: {self.why}" if self.why else self.outcome


SENT = Wake("sent")


def skipped(why: str) -> Wake:
    return Wake("skipped", why)


class Nudger(Protocol):
    async def __call__(self, pod: str, agent: str, cli: str) -> Wake:
        """Wake an idle agent: `sent`, or `skipped` with why. Never message content."""
        ...


class PaneReader(Protocol):
    async def __call__(self, pod: str, agent: str) -> str:
        """The recent text on the agent's screen ("" when there is none)."""
        ...


@dataclass(frozen=True)
class Sign:
    """Something an agent's screen shows that needs a person (`blocked`) or stops it (`failed`)."""

    state: str
    """`blocked` or `failed`."""
    kind: AttentionKind | None = None
    detail: str = ""


@dataclass(frozen=True)
class Screen:
    """What an agent's screen says, as its CLI's adapter reads it."""

    sign: Sign | None = None
    working: bool | None = None
    """Its CLI shows it is working on a turn (None: it cannot tell)."""


class ScreenReader(Protocol):
    async def __call__(self, pod: str, agent: str, cli: str) -> Screen | None:
        """The agent's screen read by its adapter's signs; None when its CLI declares none or
        it has no live pane."""
        ...


@dataclass(frozen=True)
class Notice:
    """One notice to a person, from the pod file's `notify:`."""

    on: str
    """`blocked`, `failed` or `over_budget`."""
    agent: str
    detail: str
    run: tuple[str, ...] = ()
    """A command (argv, placeholders filled, no shell)."""
    bell: bool = False
    """Ring the terminal bell in the pod's tmux session (in the agent's window)."""


class Notifier(Protocol):
    async def __call__(self, pod: str, notice: Notice) -> str:
        """Tell a person; returns what was done ("ran notify-send: exit 0", "rang the bell") or why not.
        Bounded in time: it never holds the broker up."""
        ...


async def no_nudge(pod: str, agent: str, cli: str) -> Wake:
    return skipped("this broker has no way to wake agents")


async def no_pane(pod: str, agent: str) -> str:
    return ""


async def no_screen(pod: str, agent: str, cli: str) -> Screen | None:
    return None


async def no_notice(pod: str, notice: Notice) -> str:
    return "skipped: this broker has no way to notify"


@dataclass(frozen=True)
class Ports:
    nudge: Nudger = no_nudge
    read_pane: PaneReader = no_pane
    read_screen: ScreenReader = no_screen
    notify: Notifier = no_notice
