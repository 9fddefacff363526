"""The adapter shape: everything podctl knows about one agent CLI. Standard library only.

One module per CLI (`claude.py`, `codex.py`, `gemini.py`, `script.py`) defines an `ADAPTER`
object of this shape; `get_adapter(cli)` finds it. Adding a CLI means adding one module and
one line to `ADAPTER_MODULES`.

The orchestrator calls `prepare` then `launch` to start an agent in its tmux window; the hook
entry point (`podctl hook CLI EVENT`) calls `hook_event` and `render` for every hook the CLI
runs; the broker's wake path types `wake_text` into an idle agent's pane.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .hookio import ADAPTER_MODULES, HookResult, load_adapter

__all__ = ["ADAPTER_MODULES", "HOOKS_DIR", "Adapter", "AgentContext", "HookResult", "Launch", "get_adapter"]

HOOKS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class AgentContext:
    """What an adapter needs to know about one agent of one pod."""

    pod: str
    agent: str
    cli: str
    role: str
    workdir: Path
    state_dir: Path
    """The pod's state folder (`PodPaths.root`): broker.sock lives here."""
    agent_dir: Path
    """This agent's private folder (0700): the token and every config file podctl writes for it."""
    token: str
    model: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    script: dict[str, Any] | str | None = None
    python: str = sys.executable

    @property
    def socket(self) -> Path:
        return self.state_dir / "broker.sock"

    @property
    def token_file(self) -> Path:
        return self.agent_dir / "token"

    def hook_command(self, cli_event: str) -> list[str]:
        """The command line a CLI runs for one of its hook events.

        `python -I -S hooks/fast.py`: no site-packages scan, standard library only, so a hook costs
        little more than a bare interpreter start.
        """
        return [
            self.python, "-I", "-S", str(HOOKS_DIR / "fast.py"),
            "--socket", str(self.socket), "--token-file", str(self.token_file), "--agent", self.agent,
            self.cli, cli_event,
        ]

    def shim_command(self) -> list[str]:
        """The command line of this agent's MCP server (`podctl shim`)."""
        return [
            self.python, "-m", "podctl.orchestrator.cli.main", "shim",
            "--pod", self.pod, "--agent", self.agent, "--socket", str(self.socket),
            "--token-file", str(self.token_file),
        ]


@dataclass(frozen=True)
class Launch:
    """How to start the CLI in its pane."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


class Adapter(Protocol):
    name: str
    executable: str
    """The program looked up on PATH (doctor, `up`'s early check)."""
    wake_text: str
    """The fixed nudge typed into an idle agent's pane. Never message content."""
    tested_versions: tuple[str, ...]

    def prepare(self, ctx: AgentContext) -> None:
        """Write the per-agent files (MCP entry, hooks, settings, trust) under `ctx.agent_dir`."""

    def launch(self, ctx: AgentContext) -> Launch:
        """The command, environment and folder that start this CLI for `ctx`."""

    def hook_event(self, cli_event: str, payload: dict[str, Any]) -> HookResult:
        """Map a native hook event (and its stdin JSON) to our busy/idle event."""

    def render(self, cli_event: str, payload: dict[str, Any], text: str | None) -> str:
        """The stdout this CLI expects from the hook; `text` is what to inject (None: nothing)."""


def user_file(*parts: str) -> Path | None:
    """A file of the user's own CLI setup (credentials), if it exists; podctl only reads or links it."""
    path = Path.home().joinpath(*parts)
    return path if path.is_file() else None


def link_credentials(source: Path | None, target: Path) -> None:
    """Let a per-agent config folder use the user's login: a symlink, never a copy or an edit."""
    if source is None or target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def get_adapter(cli: str) -> Adapter:
    return load_adapter(cli)
