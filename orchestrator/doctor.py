"""`podctl doctor`'s checks as data: tmux, every registered CLI and its version, the state
folder, and known problems of existing pods."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from podctl.broker.paths import state_root
from podctl.hooks.adapter import get_adapter
from podctl.pods import clis

from .launch import install_command, install_hint
from .tmux import socket_name

THROWAWAY_DIRS = {"HOME": "", "XDG_CONFIG_HOME": ".config", "XDG_CACHE_HOME": ".cache", "XDG_DATA_HOME": ".local/share",
                  "XDG_STATE_HOME": ".local/state"}
"""Where a CLI asked for its version may write (Gemini CLI writes ~/.gemini, OpenCode its XDG folders,
even for `--version`): all of it in a folder removed afterwards, never the user's."""
CLI_HOMES = ("CODEX_HOME", "GEMINI_CLI_HOME", "CLAUDE_CONFIG_DIR", "OPENCODE_CONFIG_DIR", "KILO_CONFIG_DIR", "QWEN_HOME",
             "COPILOT_HOME", "COPILOT_CACHE_HOME", "COPILOT_PKG_CACHE_HOME", "CLINE_DIR", "CLINE_DATA_DIR")
"""A CLI's own config folder named by the user's environment: not handed to a version check."""


def version_of(argv: list[str]) -> str | None:
    """The first line a command prints, run with a throwaway HOME (and XDG folders): the user's
    CLI folders are never written, not even by `doctor`."""
    with tempfile.TemporaryDirectory(prefix="podctl-doctor-", ignore_cleanup_errors=True) as home:
        env = {name: value for name, value in os.environ.items() if name not in CLI_HOMES}
        env.update({name: str(Path(home, sub)) for name, sub in THROWAWAY_DIRS.items()})
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False, env=env,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


LEVELS = {"ok": True, "warn": True, "fail": False, "skip": None}
"""Each check's level and its `ok` (kept for scripts that read `ok`): a warning is not a failure."""


def row(check: str, level: str, detail: str) -> dict[str, Any]:
    return {"check": check, "ok": LEVELS[level], "level": level, "detail": detail}


def _release(text: str) -> tuple[int, ...] | None:
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(part) for part in found.groups()) if found else None


def version_level(version: str, tested: tuple[str, ...]) -> str:
    """ok: a version the tests run; warn: a newer patch release of one (same major.minor); else fail."""
    if any(v in version for v in tested):
        return "ok"
    found = _release(version)
    for pinned in filter(None, map(_release, tested)):
        if found is not None and found[:2] == pinned[:2] and found[2] > pinned[2]:
            return "warn"
    return "fail"


def cli_check(cli: str) -> dict[str, Any]:
    """Whether the CLI is installed, and whether its version is one podctl's tests run (or what is
    wrong with the adapter a package registered for it)."""
    try:
        adapter = get_adapter(cli)
    except clis.UnknownCli as exc:
        return row(cli, "fail", str(exc))
    path = shutil.which(adapter.executable)
    if path is None:
        return row(cli, "skip", f"not on PATH (only needed for `cli: {cli}` agents); {install_hint(cli)}")
    if not adapter.version_args:
        return row(cli, "ok", f"{', '.join(adapter.tested_versions)} ({path})")
    version = version_of([path, *adapter.version_args]) or "unknown version"
    level = version_level(version, adapter.tested_versions)
    pins = ", ".join(adapter.tested_versions)
    note = {"ok": "", "warn": f"; a newer patch release than the {pins} podctl's tests pin (likely fine)",
            "fail": f"; podctl's tests pin {pins}" + (f": {install_command(cli)}" if install_command(cli) else "")}[level]
    return row(cli, level, f"{version} at {path}{note}")


def attention_check(cli: str) -> dict[str, Any]:
    """What podctl can see and answer of the CLI's waits for a person, and what it cannot report
    (docs/attention.md): a note, never a failure."""
    try:
        seen: dict[str, str] = dict(get_adapter(cli).attention)
    except clis.UnknownCli:
        return row(f"{cli} attention", "skip", f"its adapter cannot be used (the {cli} row says why)")
    if not seen:
        return row(f"{cli} attention", "warn", "its adapter declares none: podctl shows it busy or idle only")
    unreported = seen.get("unreported")
    answer = "answered from podctl" if "answered by podctl" in seen.get("permission", "") else "answered in its pane only"
    detail = f"permission requests {answer}" + (f"; cannot report: {unreported}" if unreported else "")
    return row(f"{cli} attention", "ok", detail)


def checks() -> list[dict[str, Any]]:
    tmux = shutil.which("tmux")
    rows = [
        row("podctl", "ok", f"{dist_version('podctl')} (Python {sys.version.split()[0]}, {sys.executable})"),
        row("tmux", "ok", version_of(["tmux", "-V"]) or "tmux") if tmux
        else row("tmux", "fail", "not installed: apt-get install tmux"),
    ]
    rows += [cli_check(cli) for cli in clis.names()]
    rows += [attention_check(cli) for cli in clis.names()]
    root = state_root()
    if root.exists():
        mode = stat.S_IMODE(root.stat().st_mode)
        loose = [p.name for p in root.iterdir() if p.is_dir() and stat.S_IMODE(p.stat().st_mode) & 0o077]
        detail = f"{root} ({mode:04o})" + (f"; pods readable by others: {', '.join(loose)} (chmod 700 them)" if loose else "")
        rows.append(row("state folder", "fail" if loose else "ok", detail))
        for pod in sorted(p for p in root.iterdir() if p.is_dir()):
            for flag in pod.glob("agents/*/codex-home/bypass-hook-trust"):
                rows.append(row(
                    f"codex hooks ({pod.name}/{flag.parts[-3]})", "fail",
                    "hook trust could not be pre-seeded with `codex app-server`; the agent runs with"
                    " --dangerously-bypass-hook-trust. Run `podctl restart` once codex app-server works.",
                ))
    else:
        rows.append(row("state folder", "ok", f"{root} (created on first `podctl up`)"))
    if os.environ.get("TMUX") and not socket_name():
        rows.append(row("tmux session", "ok", "inside tmux: `podctl attach` switches client"))
    return rows
