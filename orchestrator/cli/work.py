"""CLI commands about agents' work: `diff`."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from .lifecycle import AgentArg, PodArg


def diff(
    pod: PodArg,
    agent: AgentArg,
    stat: Annotated[bool, typer.Option("--stat", help="a summary per file instead of the patch")] = False,
    name_only: Annotated[bool, typer.Option("--name-only", help="only the changed files' names")] = False,
) -> None:
    """The agent's changes against its starting point, committed and uncommitted (its worktree, if it has one)."""
    from podctl.orchestrator import agent_diff
    from podctl.orchestrator.lifecycle import load, pod_file_of, pod_paths_of
    from podctl.pods.errors import PodctlError

    try:
        pod_file = pod_file_of(pod)
    except PodctlError:
        pod_file = None
    paths = pod_paths_of(pod, pod_file) if pod_file else None
    if paths is None:
        from podctl.orchestrator.pod import find

        paths = find(pod)
    try:
        spec = load(pod_file) if pod_file else None
    except PodctlError:
        spec = None
    plan = agent_diff.plan(paths, spec, agent)
    typer.echo(plan.note, err=True)
    quiet = subprocess.run(agent_diff.argv(plan, ["--quiet"]), cwd=plan.cwd, check=False)
    if quiet.returncode == 0:
        typer.echo("no changes", err=True)  # on stderr, like the note: stdout stays an (empty) patch
        return
    extra = [*(["--stat"] if stat else []), *(["--name-only"] if name_only else [])]
    raise typer.Exit(subprocess.run(agent_diff.argv(plan, extra), cwd=plan.cwd, check=False).returncode)


def register(app: typer.Typer) -> None:
    app.command()(diff)
