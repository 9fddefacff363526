"""CLI commands about the agent CLIs: doctor."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from typing import Annotated, Any

import typer

from podctl.broker.paths import state_root

VERSION_ARGS = {"claude": ["--version"], "codex": ["--version"], "gemini": ["--version"]}


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def checks() -> list[dict[str, Any]]:
    from podctl.hooks.adapter import get_adapter

    rows: list[dict[str, Any]] = []
    tmux = shutil.which("tmux")
    rows.append({
        "check": "tmux", "ok": tmux is not None,
        "detail": _version(["tmux", "-V"]) if tmux else "not installed: apt-get install tmux",
    })
    for cli in ("claude", "codex", "gemini"):
        adapter = get_adapter(cli)
        path = shutil.which(adapter.executable)
        if path is None:
            rows.append({"check": cli, "ok": None, "detail": f"not on PATH (only needed for `cli: {cli}` agents)"})
            continue
        version = _version([path, *VERSION_ARGS[cli]]) or "unknown version"
        tested = any(v in version for v in adapter.tested_versions)
        note = "" if tested else f"; podctl is tested with {', '.join(adapter.tested_versions)}"
        rows.append({"check": cli, "ok": tested, "detail": f"{version} at {path}{note}"})
    root = state_root()
    if root.exists():
        mode = stat.S_IMODE(root.stat().st_mode)
        loose = [p.name for p in root.iterdir() if p.is_dir() and stat.S_IMODE(p.stat().st_mode) & 0o077]
        ok = not loose
        detail = f"{root} ({oct(mode)})" + (f"; pods readable by others: {', '.join(loose)} (chmod 700 them)" if loose else "")
        rows.append({"check": "state folder", "ok": ok, "detail": detail})
        for pod in sorted(p for p in root.iterdir() if p.is_dir()):
            for flag in pod.glob("agents/*/codex-home/bypass-hook-trust"):
                rows.append({
                    "check": f"codex hooks ({pod.name}/{flag.parts[-3]})", "ok": False,
                    "detail": "hook trust could not be pre-seeded with `codex app-server`; the agent runs with"
                              " --dangerously-bypass-hook-trust. Run `podctl restart` once codex app-server works.",
                })
    else:
        rows.append({"check": "state folder", "ok": True, "detail": f"{root} (created on first `podctl up`)"})
    if os.environ.get("TMUX") and not os.environ.get("PODCTL_TMUX_SOCKET"):
        rows.append({"check": "tmux session", "ok": True, "detail": "inside tmux: `podctl attach` switches client"})
    return rows


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Check tmux, the agent CLIs (and their versions), the state folder, and known problems."""
        rows = checks()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        else:
            for row in rows:
                mark = {True: "ok  ", False: "FAIL", None: "--  "}[row["ok"]]
                typer.echo(f"{mark} {row['check']:<22} {row['detail']}")
        if any(row["ok"] is False for row in rows if row["check"] == "tmux"):
            raise typer.Exit(1)
