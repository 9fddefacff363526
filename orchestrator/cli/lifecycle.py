"""CLI commands of a pod's life: up, plan, down, resume, restart, add, remove, delete, ls, status, attach.

Thin: each command parses, calls `orchestrator.lifecycle` / `orchestrator.pod`, and renders. A
PodctlError is printed once by the entry point (`main.py`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from podctl.pods.errors import PodctlError, UsageError

from . import complete

PodArg = Annotated[str, typer.Argument(help="the pod's name (or its pod file)", autocompletion=complete.pods)]
AgentArg = Annotated[str, typer.Argument(help="the agent", autocompletion=complete.agents)]


def _say_waiting(holder: str) -> None:
    from podctl.orchestrator.pod import holder_text

    typer.echo(f"waiting for {holder_text(holder)} to finish with this pod…", err=True)


def _say_note(text: str) -> None:
    typer.echo(f"✓ {text}")
    sys.stdout.flush()


def _say_step(step: Any) -> None:
    """A step of `up`, printed the moment it is done (a pod's first `up` takes seconds)."""
    typer.echo(f"✓ {step.describe()}")
    sys.stdout.flush()


class Spinner:
    """`⠋ waiting for writer to be ready (1.2s)` on stderr while new agents start: only on a terminal,
    redrawn in place, cleared when done."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()
        self.frame = 0
        self.drawn = False

    def show(self, agents: list[str], waited: float) -> None:
        if not self.on:
            return
        if not agents:
            self.clear()
            return
        self.frame += 1
        sys.stderr.write(f"\r\033[K{self.FRAMES[self.frame % len(self.FRAMES)]} waiting for {', '.join(agents)}"
                         f" to be ready ({waited:.1f}s)")
        sys.stderr.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.drawn = False


def up(
    pod_file: Annotated[Path, typer.Argument(help="the pod file")] = Path("pod.yaml"),
    attach: Annotated[
        bool, typer.Option("--attach/--no-attach", help="attach to the tmux session (default: when in a terminal)")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="restart busy agents now instead of after their turn")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="switch a running pod of the same name to this file")] = False,
    site: Annotated[str | None, typer.Option(
        "--site", metavar="NAME", help="a pod across machines: run this site's agents and join its bridge (or PODCTL_SITE)",
    )] = None,
) -> None:
    """Bring the pod up to match its file (idempotent) and keep it matching as the file changes."""
    from podctl.orchestrator.lifecycle import Progress, bring_up

    spinner = Spinner()
    try:
        result = bring_up(pod_file, force=force, replace=replace, on_wait=_say_waiting, site=site,
                          progress=Progress(step=_say_step, waiting=spinner.show, note=_say_note))
    finally:
        spinner.clear()
    name = result.spec.name
    if result.replaced is not None:
        typer.echo(f"pod {name}: now follows {pod_file.resolve()} (was {result.replaced})")
    for step in result.outcome.waiting:
        typer.echo(f"… {step.describe(result.spec.source)}")
    typer.echo(f"pod {name}: {'up' if result.outcome.done else 'nothing to do: the pod matches its file'}")
    if result.failures:
        for failure in result.failures:
            typer.echo(failure.describe(), err=True)
        typer.echo(f"see `podctl status {name}`; fix the agent in the pod file (the pod follows the save)", err=True)
        raise typer.Exit(1)
    if attach and sys.stdin.isatty() and sys.stdout.isatty():
        _attach(name)
    else:
        typer.echo(f"attach with: podctl attach {name}    live view: podctl ui {name}    transcript: podctl tail {name} -f")


def plan(
    pod_file: Annotated[Path, typer.Argument(help="the pod file")] = Path("pod.yaml"),
    force: Annotated[bool, typer.Option("--force", help="plan as if --force were given to up")] = False,
) -> None:
    """Print what `up` would change, and change nothing."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator import reconcile
    from podctl.orchestrator.lifecycle import load, plan_notes

    spec = load(pod_file.resolve())
    paths = PodPaths.of(spec.name)
    notes = plan_notes(spec, paths)
    if notes.refusal:
        typer.echo(f"pod {spec.name}: {notes.refusal}")
    steps = reconcile.compute(spec, paths, force=force)
    changes = [*notes.lines, *reconcile.config_plan(spec, paths)]
    if not steps and not changes:
        typer.echo(f"pod {spec.name}: nothing to do: the pod matches its file")
        return
    count = len(steps) + len(changes)
    typer.echo(f"pod {spec.name}: {count} change{'s' if count > 1 else ''}")
    for line in [step.describe(spec.source) for step in steps] + changes:
        typer.echo(f"  {line}")


def resume(pod: PodArg, attach: Annotated[bool, typer.Option("--attach/--no-attach")] = True) -> None:
    """`up` of the pod file recorded for this pod."""
    from podctl.orchestrator.lifecycle import pod_file_of

    up(pod_file_of(pod), attach=attach, force=False, replace=False, site=None)


def down(pod: PodArg) -> None:
    """Stop the pod's agents, supervisor, broker and tmux session; its history is kept."""
    from podctl.orchestrator import lifecycle
    from podctl.orchestrator.pod import find

    paths = find(pod)
    stopped = lifecycle.down(paths, on_wait=_say_waiting)
    what = f"stopped its {', '.join(stopped)}" if stopped else "it was not running"
    typer.echo(f"pod {paths.pod} is down ({what}); history kept in {paths.root}"
               f" (`podctl resume {paths.pod}` brings it back)")


def restart(pod: PodArg, agent: AgentArg) -> None:
    """Restart an agent's CLI: a fresh model context, the same identity and history."""
    from podctl.orchestrator.lifecycle import restart_agent
    from podctl.orchestrator.pod import find

    failures = restart_agent(find(pod), agent, on_wait=_say_waiting)
    typer.echo(f"restarted {agent}")
    if failures:
        for failure in failures:
            typer.echo(failure.describe(), err=True)
        raise typer.Exit(1)


def _edited(result: Any, done: str, *notes: str) -> None:
    typer.echo(f"{done}: {result.pod_file}")
    for note in notes:
        typer.echo(note)
    if result.applied is None:
        typer.echo(f"the pod is not up: `podctl up {result.pod_file}` applies it")
    else:
        typer.echo(result.applied)


def add(
    pod: PodArg,
    cli: Annotated[str, typer.Argument(help="the agent's CLI")],
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="the new agent's name")],
    role: Annotated[str | None, typer.Option(metavar="TEXT", help="its role")] = None,
) -> None:
    """Add an agent to the pod file (comments kept); a running pod follows."""
    from podctl.orchestrator.lifecycle import edit_pod_file, pod_file_of
    from podctl.pods.edit import add_agent

    pod_file = pod_file_of(pod)
    result = edit_pod_file(pod_file, lambda text: add_agent(text, pod_file, name, cli, role).text)
    _edited(result, f"added {name} ({cli})")


def remove(
    pod: PodArg,
    name: AgentArg,
    force: Annotated[bool, typer.Option(
        "--force", help="also remove its worktree if it holds uncommitted or unmerged work (its branch is kept)",
    )] = False,
) -> None:
    """Remove an agent from the pod file (comments kept) and its worktree; a running pod follows."""
    from podctl.orchestrator import worktrees
    from podctl.orchestrator.lifecycle import edit_pod_file, pod_file_of, pod_paths_of
    from podctl.pods.edit import remove_agent
    from podctl.pods.worktree import read_record

    pod_file = pod_file_of(pod)
    paths = pod_paths_of(pod, pod_file)
    record = read_record(paths.root, name) if paths else None
    removal = worktrees.removal(paths, record) if record and paths else None
    refusal = worktrees.refusal([removal]) if removal else None
    if refusal and not force:
        raise PodctlError(f"{name} is not removed: {refusal}")
    notes: list[str] = []

    def change(text: str) -> str:
        edit = remove_agent(text, pod_file, name)
        notes.append(edit.note)
        return edit.text

    result = edit_pod_file(pod_file, change)
    _edited(result, f"removed {name}", *[n for n in notes if n])
    if removal is not None and paths is not None:
        from podctl.orchestrator import tmux

        window = tmux.windows(tmux.server(), paths.pod).get(name)
        if window is not None and not window.dead:
            typer.echo(f"{name} is busy and stops once idle; its worktree {removal.record.path} is kept: remove it then"
                       f" with `git worktree remove {removal.record.path}` (after merging {removal.record.branch})")
            return
        typer.echo(worktrees.remove(paths, removal, force=force))


def delete(
    pod: Annotated[str | None, typer.Argument(help="the pod", autocompletion=complete.pods)] = None,
    all_pods: Annotated[bool, typer.Option("--all", help="every pod")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="also remove agents' worktrees that hold uncommitted or unmerged work (branches are kept)",
    )] = False,
) -> None:
    """Stop a pod and delete its state, history and agents' worktrees (asks first unless --yes)."""
    from podctl.orchestrator import pod as pods

    if all_pods == (pod is not None):
        raise UsageError("name one pod, or give --all")
    targets = [pods.paths_of(name) for name in pods.known_pods()] if all_pods else [pods.find(pod or "")]
    if not targets:
        typer.echo("no pods to delete")
        return
    names = ", ".join(p.pod for p in targets)
    if not yes:
        try:
            sure = typer.confirm(f"delete {names} and all history?")
        except typer.Abort:
            raise PodctlError(f"nothing deleted: delete asks first, and no answer came (no terminal?): pass --yes"
                              f" to delete without asking (podctl delete {'--all' if all_pods else names} --yes)") from None
        if not sure:
            typer.echo("nothing done")
            return
    for paths in targets:
        for line in pods.delete(paths, force=force):
            typer.echo(line)
        typer.echo(f"deleted pod {paths.pod}")


LS_JSON = "print one JSON array of {pod, state (up, down or partial: ...), pod_file} (for scripts)"
STATUS_JSON = ("print the status as one JSON object: the pod's parts, why it no longer follows its pod file"
               " (pod_file_problem, null while it does), and each agent's state, unread count, last wake and their times"
               " (for scripts)")


def list_pods(as_json: Annotated[bool, typer.Option("--json", help=LS_JSON)] = False) -> None:
    """The pods in this state folder, up or down."""
    from .render import pods_lines

    for line in pods_lines(as_json):
        typer.echo(line)


def status(pod: PodArg, as_json: Annotated[bool, typer.Option("--json", help=STATUS_JSON)] = False) -> None:
    """Agents (busy/idle/stopped, unread, last wake), broker, supervisor, tmux session."""
    from .render import status_lines

    for line in status_lines(pod, as_json):
        typer.echo(line)


def attach(pod: PodArg) -> None:
    """Attach to the pod's tmux session."""
    from podctl.orchestrator.pod import find

    _attach(find(pod).pod)


def supervise(
    pod_file: Annotated[Path, typer.Argument()],
    pod: Annotated[str | None, typer.Argument(help="the pod's name, for when its file cannot be read")] = None,
) -> None:
    """Run a pod's supervisor in the foreground (started by `up`)."""
    from podctl.orchestrator.supervisor import run

    raise typer.Exit(run(pod_file, pod))


def _attach(pod: str) -> None:
    """Attach this terminal to the pod's session. Inside tmux, the client switches to it instead (tmux
    refuses to nest); inside a tmux of another server, the session opens nested, as `TMUX= tmux attach`."""
    import subprocess

    from podctl.orchestrator.tmux_names import target, tmux_argv

    env = dict(os.environ)
    if env.get("TMUX"):
        switch = subprocess.run(tmux_argv("switch-client", "-t", target(pod)), capture_output=True, timeout=10, check=False)
        if switch.returncode == 0:
            return
        del env["TMUX"]
        typer.echo(f"inside another tmux server: attaching to {pod} nested (detach with the prefix key twice, then d)",
                   err=True)
    argv = tmux_argv("attach-session", "-t", target(pod))
    os.execvpe(argv[0], argv, env)


def register(app: typer.Typer) -> None:
    from podctl.pods import clis

    choices = ", ".join(clis.names())
    add.__annotations__["cli"] = Annotated[
        str, typer.Argument(help=f"the agent's CLI: {choices}", autocompletion=complete.clis)
    ]
    for command in (up, plan, resume, down, restart, add, remove, delete, status, attach):
        app.command()(command)
    app.command("ls")(list_pods)
    app.command(hidden=True)(supervise)
