"""`podctl doctor`'s checks as data: tmux, every registered CLI and its version, the state
folder, and known problems of existing pods."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from typing import Any

from podctl.broker.paths import state_root
from podctl.hooks.adapter import get_adapter
from podctl.pods import clis

from .tmux import socket_name


def version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def cli_check(cli: str) -> dict[str, Any]:
    """Whether the CLI is installed, and whether its version is one podctl's tests run."""
    adapter = get_adapter(cli)
    path = shutil.which(adapter.executable)
    if path is None:
        return {"check": cli, "ok": None, "detail": f"not on PATH (only needed for `cli: {cli}` agents)"}
    if not adapter.version_args:
        return {"check": cli, "ok": True, "detail": f"{', '.join(adapter.tested_versions)} ({path})"}
    version = version_of([path, *adapter.version_args]) or "unknown version"
    tested = any(v in version for v in adapter.tested_versions)
    note = "" if tested else f"; podctl is tested with {', '.join(adapter.tested_versions)}"
    return {"check": cli, "ok": tested, "detail": f"{version} at {path}{note}"}


def checks() -> list[dict[str, Any]]:
    tmux = shutil.which("tmux")
    rows: list[dict[str, Any]] = [{
        "check": "tmux", "ok": tmux is not None,
        "detail": version_of(["tmux", "-V"]) if tmux else "not installed: apt-get install tmux",
    }]
    rows += [cli_check(cli) for cli in clis.names()]
    root = state_root()
    if root.exists():
        mode = stat.S_IMODE(root.stat().st_mode)
        loose = [p.name for p in root.iterdir() if p.is_dir() and stat.S_IMODE(p.stat().st_mode) & 0o077]
        detail = f"{root} ({oct(mode)})" + (f"; pods readable by others: {', '.join(loose)} (chmod 700 them)" if loose else "")
        rows.append({"check": "state folder", "ok": not loose, "detail": detail})
        for pod in sorted(p for p in root.iterdir() if p.is_dir()):
            for flag in pod.glob("agents/*/codex-home/bypass-hook-trust"):
                rows.append({
                    "check": f"codex hooks ({pod.name}/{flag.parts[-3]})", "ok": False,
                    "detail": "hook trust could not be pre-seeded with `codex app-server`; the agent runs with"
                              " --dangerously-bypass-hook-trust. Run `podctl restart` once codex app-server works.",
                })
    else:
        rows.append({"check": "state folder", "ok": True, "detail": f"{root} (created on first `podctl up`)"})
    if os.environ.get("TMUX") and not socket_name():
        rows.append({"check": "tmux session", "ok": True, "detail": "inside tmux: `podctl attach` switches client"})
    return rows
