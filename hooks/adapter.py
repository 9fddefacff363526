"""The adapter shape: everything podctl knows about one agent CLI.

Each CLI is an `Adapter` object registered under the entry-point group `podctl.adapters`
(pods/clis.py; the built-ins in pyproject.toml): one module per CLI here (`claude.py`, `codex.py`,
`gemini.py`, `opencode.py`, `kilo.py`, `qwen.py`, `copilot.py`, `cline.py`, `script.py`), and any installed
package can add one (docs/adapters.md).

The orchestrator calls `prepare` then `launch` to start an agent in its tmux window. Each native
hook event of the CLI is described by a `HookEvent` in `hook_events`, and the adapter writes the
hook commands into the CLI's config with `AgentContext.hook_command`, so the hook path itself
(hooks/path/) never imports an adapter. The broker's wake types `wake_text` into an idle agent's pane.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from podctl.pods import clis, layout

from .usage import NoUsage, UsageParser, UsageRecord, UsageSource

HOOKS_DIR = Path(__file__).resolve().parent
SHIM_DIR = HOOKS_DIR.parent / "shim"
HOLD_SLACK_S = 15
"""A holding hook's CLI timeout is its hold plus this (the hook's own deadline is its hold plus 2 s)."""


@dataclass(frozen=True)
class HookEvent:
    """What one native hook event of a CLI means to podctl, and how the hook answers it.

    `event`: podctl's event (one of `wire.HOOK_EVENTS`), or None when it changes nothing.
    `inject`: whether new messages may be injected in the answer.
    `attention_only`: inject only what needs the agent now (asks, replies, urgent tells); used at
    turn end, where injecting means continuing the turn, so plain tells wait for the next turn.
    `output`: the shape of the answer on stdout (hooks/path/render.py).
    `intro`: also answer with the session's introduction (role, team, tools), which `session_start`
    always has: for a CLI whose session starts with its first prompt, whose first hook is a turn's.
    `hold`: a permission request whose hook waits for podctl's answer (up to the pod's
    `limits.permission_hold_s`; the CLI's hook timeout is set above it, `AgentContext.hold_timeout_s`).
    """

    event: str | None
    inject: bool = True
    attention_only: bool = False
    output: str = "none"
    intro: bool = False
    hold: bool = False

    def options(self) -> list[str]:
        argv = ["--event", self.event] if self.event else []
        argv += ["--output", self.output]
        if self.attention_only:
            argv.append("--attention-only")
        if not self.inject:
            argv.append("--no-inject")
        if self.intro:
            argv.append("--intro")
        return argv


@dataclass(frozen=True)
class ScreenSign:
    """Text on a CLI's screen that means it waits for a person (`blocked`) or cannot work (`failed`),
    for what no hook of the CLI reports (a login screen, a trust dialog, an API error it retries).

    `pattern` is a regular expression (multiline) searched in the last `last_lines` non-empty lines of
    the screen (all of it when None); `says` words the need, with the pattern's named groups filled in
    (`{0}`: the whole match). A permission dialog's sign also tells podctl that one answered in the pane
    has gone (orchestrator/screens.py reads them; broker/attention.py decides)."""

    pattern: str
    state: str
    kind: str | None = None
    says: str = "{0}"
    last_lines: int | None = None


@dataclass(frozen=True)
class PermissionMode:
    """How a CLI is started for one of the pod file's `permissions` (`ask`, `edits`, `full`), or with
    none (`default`): its own flags, and what that means with it (validate, doctor, docs/attention.md)."""

    argv: tuple[str, ...] = ()
    says: str = ""
    narrower: bool = False
    """The CLI has no mode that does exactly this: it asks for more (never for less)."""
    quiet: bool = False
    """As a default: nothing a person would not expect, so `validate` does not note it (the script
    agent asks only where its script has a permission step)."""


def mode_argv(adapter: Adapter, ctx: AgentContext) -> list[str]:
    """The flags that put `adapter`'s CLI in the agent's `permissions` mode ([] for its own default)."""
    mode = adapter.permission_modes.get(ctx.permissions or "")
    return list(mode.argv) if mode is not None else []


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
    permissions: str | None = None
    """The pod file's `permissions` for this agent (`ask`, `edits`, `full`; None: the CLI's own default)."""
    hold_s: float = 600.0
    """How long a permission hook waits for podctl's answer (`limits.permission_hold_s`)."""

    @property
    def hold_timeout_s(self) -> int:
        """The CLI's timeout for a holding hook: above the hold, so the hook always ends first."""
        return int(self.hold_s) + HOLD_SLACK_S

    @property
    def socket(self) -> Path:
        return self.state_dir / layout.SOCKET

    def shared_cache(self, name: str) -> Path:
        """`<state root>/.cache/<name>/`, made 0700: what the CLI would cache in the user's home (an
        unpacked package, downloaded providers), one copy for its agents of every pod of this state root."""
        folder = self.state_dir.parent / layout.CLI_CACHE / name
        for path in (folder.parent, folder):
            path.mkdir(mode=0o700, exist_ok=True)
            path.chmod(0o700)
        return folder

    @property
    def token_file(self) -> Path:
        return self.agent_dir / layout.TOKEN

    def hook_command(self, how: HookEvent) -> list[str]:
        """The command line a CLI runs for one of its hook events.

        `python -I -S hooks/fast.py`: no site-packages scan, standard library only, so a hook costs
        little more than a bare interpreter start. It carries the agent's own identity only (its
        socket and token file), and everything the hook needs to know about the event."""
        hold = ["--hold-ms", str(int(self.hold_s * 1000))] if how.hold else []
        return [
            self.python, "-I", "-S", str(HOOKS_DIR / "fast.py"),
            "--socket", str(self.socket), "--token-file", str(self.token_file), "--agent", self.agent,
            *how.options(), *hold,
        ]

    def hook_shell(self, how: HookEvent) -> str:
        """`hook_command` as one shell command line (for CLIs whose config takes a string)."""
        return shlex.join(self.hook_command(how))

    def announced(self, argv: list[str]) -> list[str]:
        """`argv` run after telling the broker the agent's session started (idle, nothing injected).

        For a CLI that fires no hook until its first prompt: without this podctl would never see
        it up, and never wake it. The broker still wakes it only once its MCP tools are up."""
        hook = self.hook_shell(HookEvent("session_start", inject=False))
        return ["sh", "-c", f'{hook} </dev/null >/dev/null 2>&1; exec "$@"', "podctl-start", *argv]

    def shim_command(self) -> list[str]:
        """The command line of this agent's MCP server (`podctl shim`, a relay to the broker).

        `python -I -S shim/fast.py`, like a hook: the CLI waits for its answer to `initialize`."""
        return [
            self.python, "-I", "-S", str(SHIM_DIR / "fast.py"),
            "--pod", self.pod, "--agent", self.agent, "--socket", str(self.socket),
            "--token-file", str(self.token_file),
        ]


@dataclass(frozen=True)
class Launch:
    """How to start the CLI in its pane."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


class Adapter(ABC):
    """Everything podctl knows about one agent CLI: the base every adapter inherits, the built-in
    ones and a third party's alike (docs/adapters.md, "Writing an adapter").

    A subclass sets the abstract members (mypy and Python both refuse an instance without them);
    every other member has its default here, which means "this CLI has no such thing". podctl reads
    every member directly, so a default is written once, here."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The pod file's `cli:` value (the entry point's name)."""

    @property
    @abstractmethod
    def executable(self) -> str:
        """The program looked up on PATH (doctor, `up`'s early check)."""

    @property
    @abstractmethod
    def tested_versions(self) -> tuple[str, ...]:
        """The versions podctl's tests run (doctor compares)."""

    @property
    @abstractmethod
    def wake_text(self) -> str:
        """The fixed nudge typed into an idle agent's pane. Never message content."""

    @property
    @abstractmethod
    def hook_events(self) -> Mapping[str, HookEvent]:
        """Each native hook event podctl installs, and what it means."""

    @abstractmethod
    def prepare(self, ctx: AgentContext) -> None:
        """Write the per-agent files (MCP entry, hooks, settings, trust) under `ctx.agent_dir`."""

    @abstractmethod
    def launch(self, ctx: AgentContext) -> Launch:
        """The command, environment and folder that start this CLI for `ctx`."""

    version_args: tuple[str, ...] = ("--version",)
    """What to run `executable` with to print its version (doctor); () when there is nothing to ask."""
    install_command: str = ""
    """The command that installs the tested version, shown when the CLI is missing (`up`, `doctor`)."""
    takes_script: bool = False
    """Whether its agents take a `script:` field in the pod file."""
    wake_ready_text: str | None = None
    """Text the CLI shows once it takes input: the wake types nothing before it is on screen."""
    wake_clear_keys: tuple[str, ...] = ()
    """Keys pressed before the wake text (to clear a half-typed prompt)."""
    wake_blocked_texts: tuple[str, ...] = ()
    """Texts of dialogs on screen that the wake's Enter would answer: nothing is typed meanwhile."""
    wake_file: str | None = None
    """A file in the agent's folder that the CLI's own plugin watches: the wake writes it and waits for
    `<file>.ack` (`prompted`: done, without typing; `busy`: not now) before typing."""

    def wake_input(self, agent_dir: Path, text: str) -> bool:
        """Hand the wake text to an input the CLI watches instead of typing it (once the pane is ready,
        as for typing); False: it is typed after all."""
        return False

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        """Where the CLI records token usage, as JSON line files under the agent's folder (hooks/usage.py);
        none: its usage is read with `usage_pull`, or is zero."""
        return []

    def usage_parser(self, state: dict[str, Any] | None = None) -> UsageParser:
        """How to read one line of `usage_files`: a parser whose `state` is kept between reads of a file."""
        return NoUsage(dict(state or {}))

    def usage_pull(self, agent_dir: Path, state: dict[str, Any]) -> tuple[list[UsageRecord], dict[str, Any]]:
        """For a CLI that keeps usage elsewhere than in line files (a database, documents it rewrites):
        the records since `state`, and the new state (the supervisor asks on changes and every 5 s)."""
        return [], state
    screen_signs: tuple[ScreenSign, ...] = ()
    """What its screen shows when it waits for a person or cannot work and no hook says so (orchestrator/screens.py)."""
    screen_working: str | None = None
    """Text on its screen while a turn runs."""
    attention: Mapping[str, str] = MappingProxyType({})
    """What podctl can and cannot see and answer of it, by topic (`doctor`; `permission`: how it is answered)."""
    permission_modes: Mapping[str, PermissionMode] = MappingProxyType({})
    """Its flags for the pod file's `permissions` (orchestrator/permissions.py); none: it has no such modes."""
    permission_flags: tuple[str, ...] = ()
    """Its own flags that set a permission mode: `validate` refuses one in `args:` beside the pod file's `permissions`."""


def get_adapter(cli: str) -> Adapter:
    """The registered adapter of `cli` (raises pods.clis.UnknownCli, also when the object registered
    is not an `Adapter`)."""
    adapter = clis.adapter(cli)
    if not isinstance(adapter, Adapter):
        raise clis.UnknownCli(
            f"the adapter of cli {cli!r} is a {type(adapter).__name__}, not a podctl.hooks.adapter.Adapter:"
            " its class must inherit Adapter (docs/adapters.md, \"Writing an adapter\")"
        )
    return adapter


def user_file(*parts: str) -> Path | None:
    """A file of the user's own CLI setup (credentials), if it exists; podctl only reads or links it."""
    path = Path.home().joinpath(*parts)
    return path if path.is_file() else None


def merge_settings(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base` (JSON settings): objects merged key by key, lists joined without
    repeats, anything else replaced. For layering podctl's needs over a user's own settings."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_settings(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            merged[key] = [*old, *(v for v in value if v not in old)]
        else:
            merged[key] = value
    return merged


def read_settings(path: Path) -> dict[str, Any]:
    """A JSON settings file of the user's as an object ({} when missing or unreadable); only read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def user_env_script(ctx: AgentContext, names: tuple[str, ...], chain: str | None, script: Path) -> str:
    """A shell script that gives the agent's own commands the user's `names` back (as the agent's `env`
    or podctl's environment has them, unset when neither does), for a CLI whose process podctl gives
    other values (its caches moved out of the user's home); then it runs the user's own script of the
    variable `chain` (if any), which `script` replaces for the CLI (Claude Code's CLAUDE_ENV_FILE, BASH_ENV)."""
    lines = []
    for name in names:
        value = ctx.env.get(name, os.environ.get(name))
        lines.append(f"export {name}={shlex.quote(value)}" if value is not None else f"unset {name}")
    own = (ctx.env.get(chain) or os.environ.get(chain)) if chain else None
    if own and own != str(script):
        lines.append(f"if [ -f {shlex.quote(own)} ]; then . {shlex.quote(own)}; fi")
    return "\n".join(lines) + "\n"


def with_env(variables: Mapping[str, str], argv: list[str]) -> list[str]:
    """`argv` run with `variables` set by `env(1)`, not in the `Launch` environment: for what the shell
    that tmux starts the window's command with must not see (bash would run a BASH_ENV script itself,
    before the CLI starts, and give the CLI what the script gives the agent's commands)."""
    return ["env", *(f"{name}={value}" for name, value in variables.items()), *argv]


def link_credentials(source: Path | None, target: Path) -> None:
    """Let a per-agent config folder use the user's login: a symlink, never a copy or an edit."""
    if source is None or target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
