"""CLI commands about the agent CLIs: doctor."""

from __future__ import annotations

import json
from typing import Annotated

import typer

JSON_HELP = "print the checks as one JSON array of {check, ok, level, detail} (for scripts)"


def doctor(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Check tmux, the agent CLIs (and their versions), the state folder, and known problems; exit 1 if any check fails."""
    from podctl.orchestrator.doctor import checks

    rows = checks()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "--  "}[row["level"]]
            typer.echo(f"{mark} {row['check']:<22} {row['detail']}")
    if any(row["level"] == "fail" for row in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
