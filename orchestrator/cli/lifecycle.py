"""CLI commands of a pod's life: up, plan, down, resume, restart, add, remove, delete, ls, status, attach."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from podctl.broker.paths import PodPaths, state_root
from podctl.pods.load import PodFileError, load_pod
from podctl.pods.spec import PodSpec


def _load(path: Path) -> PodSpec:
    try:
        return load_pod(path)
    except PodFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except FileNotFoundError:
        typer.echo(f"podctl: no pod file at {path} (create one with `podctl init`)", err=True)
        raise typer.Exit(1) from None


def _as_pod_file(pod: str) -> Path | None:
    """POD arguments may name a pod or give its pod file."""
    candidate = Path(pod)
    return candidate.resolve() if candidate.suffix in (".yaml", ".yml") and candidate.is_file() else None


def _pod_file_of(pod: str) -> Path:
    """The pod file a pod was brought up from."""
    given = _as_pod_file(pod)
    if given is not None:
        return given
    try:
        return Path(PodPaths.of(pod).pod_file_record.read_text().strip())
    except OSError:
        typer.echo(f"podctl: no pod named {pod!r} (see `podctl ls`), and no such pod file", err=True)
        raise typer.Exit(1) from None


def _name_of(pod: str) -> str:
    given = _as_pod_file(pod)
    return _load(given).name if given is not None else pod


def _preflight(spec: PodSpec) -> None:
    from podctl.orchestrator.launch import missing_clis
    from podctl.orchestrator.tmux import TmuxMissing, server

    try:
        server()
    except TmuxMissing as exc:
        typer.echo(f"podctl: {exc}", err=True)
        raise typer.Exit(1) from None
    problems = missing_clis(spec)
    if problems:
        typer.echo("podctl: cannot bring the pod up:\n  " + "\n  ".join(problems), err=True)
        raise typer.Exit(1)


def bring_up(pod_file: Path, force: bool = False) -> tuple[PodSpec, str]:
    from podctl.orchestrator import processes, reconcile

    spec = _load(pod_file)
    _preflight(spec)
    paths = PodPaths.of(spec.name)
    reconcile.record_pod_file(paths, pod_file)
    steps = reconcile.compute(spec, paths, force=force)
    outcome = reconcile.apply(spec, paths, steps)
    summary = outcome.summary()
    if outcome.done or outcome.waiting:
        reconcile.report(paths, f"podctl up:\n{summary}")
    processes.start_supervisor(spec.source or pod_file, paths)
    return spec, summary


def _attach(pod: str) -> None:
    from podctl.orchestrator.tmux import tmux_argv

    if os.environ.get("TMUX") and not os.environ.get("PODCTL_TMUX_SOCKET"):
        argv = tmux_argv("switch-client", "-t", f"={pod}")
    else:
        argv = tmux_argv("attach-session", "-t", f"={pod}")
    os.execvp(argv[0], argv)


def _status(pod: str) -> dict[str, Any]:
    from podctl.orchestrator import processes, reconcile, tmux

    paths = PodPaths.of(pod)
    out: dict[str, Any] = {"pod": pod, "state_dir": str(paths.root), "broker": "stopped", "supervisor": "stopped"}
    try:
        out["pod_file"] = paths.pod_file_record.read_text().strip()
    except OSError:
        out["pod_file"] = None
    if processes.read_pid(processes.supervisor_pid_file(paths)):
        out["supervisor"] = "running"
    srv = tmux.server()
    windows = tmux.windows(srv, pod)
    out["session"] = "running" if tmux.session_exists(srv, pod) else "stopped"
    agents: dict[str, dict[str, Any]] = {}
    if processes.broker_alive(paths):
        out["broker"] = "running"
        with reconcile.user_client(paths) as client:
            status = client.call("status")
        for agent in status["agents"]:
            agents[agent["name"]] = agent
        out["routes"] = status["routes"]
        out["pending_deliveries"] = status["pending_deliveries"]
    for name, window in windows.items():
        if name == tmux.TRANSCRIPT_WINDOW:
            continue
        entry = agents.setdefault(name, {"name": name, "state": "unknown"})
        entry["window"] = "exited" if window.dead else "running"
        if window.dead:
            entry["state"] = "stopped"
            entry["exit_status"] = window.exit_status
    for entry in agents.values():
        entry.setdefault("window", "none")
        if entry["window"] == "none":
            entry["state"] = "stopped"
    out["agents"] = list(agents.values())
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        pod_file: Annotated[Path, typer.Argument(help="the pod file")] = Path("pod.yaml"),
        attach: Annotated[bool, typer.Option("--attach/--no-attach", help="attach to the tmux session (default: when in a terminal)")] = True,
        force: Annotated[bool, typer.Option(help="restart busy agents now instead of after their turn")] = False,
    ) -> None:
        """Bring the pod up to match its file (idempotent) and keep it matching as the file changes."""
        spec, summary = bring_up(pod_file.resolve(), force=force)
        typer.echo(f"pod {spec.name}: {summary}")
        if attach and sys.stdin.isatty() and sys.stdout.isatty():
            _attach(spec.name)
        else:
            typer.echo(f"attach with: podctl attach {spec.name}    transcript: podctl tail {spec.name} -f")

    @app.command()
    def plan(
        pod_file: Annotated[Path, typer.Argument(help="the pod file")] = Path("pod.yaml"),
        force: Annotated[bool, typer.Option(help="plan as if --force were given to up")] = False,
    ) -> None:
        """Print what `up` would change, and change nothing."""
        from podctl.orchestrator import reconcile

        spec = _load(pod_file.resolve())
        steps = reconcile.compute(spec, PodPaths.of(spec.name), force=force)
        if not steps:
            typer.echo(f"pod {spec.name}: nothing to do: the pod matches its file")
            return
        typer.echo(f"pod {spec.name}: {len(steps)} step{'s' if len(steps) > 1 else ''}")
        for step in steps:
            typer.echo(f"  {step.describe()}")

    @app.command()
    def resume(pod: Annotated[str, typer.Argument(help="the pod")],
               attach: Annotated[bool, typer.Option("--attach/--no-attach")] = True) -> None:
        """`up` of the pod file recorded for this pod."""
        up(_pod_file_of(pod), attach=attach, force=False)

    @app.command()
    def down(pod: Annotated[str, typer.Argument(help="the pod (or its pod file)")]) -> None:
        """Stop the pod's agents, supervisor, broker and tmux session; its history is kept."""
        from podctl.orchestrator import processes, tmux

        name = _name_of(pod)
        paths = PodPaths.of(name)
        if not paths.root.exists():
            typer.echo(f"podctl: no pod named {name!r} (see `podctl ls`)", err=True)
            raise typer.Exit(1)
        processes.stop_pid(processes.supervisor_pid_file(paths))
        tmux.kill_session(tmux.server(), name)
        processes.stop_pid(paths.broker_pid)
        typer.echo(f"pod {name} is down; history kept in {paths.root} (`podctl resume {name}` brings it back)")

    @app.command()
    def restart(
        pod: Annotated[str, typer.Argument(help="the pod")],
        agent: Annotated[str, typer.Argument(help="the agent")],
    ) -> None:
        """Restart an agent's CLI: a fresh model context, the same identity and history."""
        from podctl.orchestrator import reconcile

        spec = _load(_pod_file_of(pod))
        if agent not in spec.agents:
            typer.echo(f"podctl: no agent {agent!r} in pod {spec.name} (agents: {', '.join(spec.agents)})", err=True)
            raise typer.Exit(1)
        reconcile.restart_agent(spec, PodPaths.of(spec.name), agent)
        reconcile.report(PodPaths.of(spec.name), f"restarted {agent} (podctl restart)")
        typer.echo(f"restarted {agent}")

    @app.command()
    def add(
        pod: Annotated[str, typer.Argument(help="the pod (or its pod file)")],
        cli: Annotated[str, typer.Argument(help="claude, codex, gemini or script")],
        name: Annotated[str, typer.Option("--name", help="the new agent's name")],
        role: Annotated[Optional[str], typer.Option(help="its role")] = None,
    ) -> None:
        """Add an agent to the pod file (comments kept); a running pod follows."""
        from podctl.pods.edit import add_agent

        _edit(pod, lambda path: add_agent(path, name, cli, role), f"added {name} ({cli})")

    @app.command()
    def remove(
        pod: Annotated[str, typer.Argument(help="the pod (or its pod file)")],
        name: Annotated[str, typer.Argument(help="the agent")],
    ) -> None:
        """Remove an agent from the pod file (comments kept); a running pod follows."""
        from podctl.pods.edit import remove_agent

        _edit(pod, lambda path: remove_agent(path, name), f"removed {name}")

    @app.command()
    def delete(
        pod: Annotated[Optional[str], typer.Argument(help="the pod")] = None,
        all_pods: Annotated[bool, typer.Option("--all", help="every pod")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    ) -> None:
        """Stop a pod and delete its state and history (asks first unless --yes)."""
        names = sorted(p.name for p in _pods()) if all_pods else [pod] if pod else []
        if not names:
            typer.echo("podctl: name a pod, or --all", err=True)
            raise typer.Exit(2)
        if not yes and not typer.confirm(f"delete {', '.join(names)} and all history?"):
            raise typer.Exit(1)
        for name in names:
            if PodPaths.of(name).root.exists():
                down(name)
                shutil.rmtree(PodPaths.of(name).root)
                typer.echo(f"deleted pod {name}")

    @app.command("ls")
    def list_pods(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """The pods in this state folder, up or down."""
        from podctl.orchestrator import processes

        rows = []
        for folder in sorted(_pods()):
            paths = PodPaths.of(folder.name)
            up_ = processes.broker_alive(paths, timeout=0.5)
            pod_file = paths.pod_file_record.read_text().strip() if paths.pod_file_record.exists() else ""
            rows.append({"pod": folder.name, "state": "up" if up_ else "down", "pod_file": pod_file})
        if as_json:
            typer.echo(json.dumps(rows))
            return
        for row in rows:
            typer.echo(f"{row['pod']:<24} {row['state']:<5} {row['pod_file']}")

    @app.command()
    def status(
        pod: Annotated[str, typer.Argument(help="the pod")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Agents (busy/idle/stopped, unread, last wake), broker, supervisor, tmux session."""
        data = _status(_name_of(pod))
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        typer.echo(f"pod {data['pod']}: broker {data['broker']}, supervisor {data['supervisor']}, tmux session {data['session']}")
        if data["broker"] != "running":
            typer.echo(f"  the broker is not running: `podctl up {data['pod_file'] or 'POD_FILE'}` repairs it")
        for agent in data["agents"]:
            extra = []
            if agent.get("unread"):
                extra.append(f"{agent['unread']} unread")
            if agent.get("last_wake"):
                extra.append(f"last wake: {agent['last_wake']}")
            if agent.get("handed_off_to"):
                extra.append(f"handed off to {agent['handed_off_to']}")
            if agent.get("exit_status") is not None:
                extra.append(f"exited {agent['exit_status']}")
            tail = f"  ({'; '.join(extra)})" if extra else ""
            typer.echo(f"  {agent['name']:<16} {agent.get('cli', '?'):<7} {agent['state']:<8}{tail}")

    @app.command()
    def attach(pod: Annotated[str, typer.Argument(help="the pod")]) -> None:
        """Attach to the pod's tmux session."""
        _attach(_name_of(pod))

    @app.command(hidden=True)
    def supervise(pod_file: Annotated[Path, typer.Argument()]) -> None:
        """Run a pod's supervisor in the foreground (started by `up`)."""
        from podctl.orchestrator.supervisor import run

        raise typer.Exit(run(pod_file))


def _pods() -> list[Path]:
    root = state_root()
    if not root.exists():
        return []
    return [p for p in root.iterdir() if p.is_dir() and (p / "pod.yaml.path").exists()]


def _edit(pod: str, change: Callable[[Path], None], done: str) -> None:
    """Edit the pod file (comments kept), then let a running pod follow it."""
    from podctl.pods.edit import EditError

    pod_file = _pod_file_of(pod)
    try:
        change(pod_file)
    except EditError as exc:
        typer.echo(f"podctl: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{done}: {pod_file}")
    _apply_if_up(pod_file)


def _apply_if_up(pod_file: Path) -> None:
    from podctl.orchestrator import processes

    spec = _load(pod_file)
    if processes.broker_alive(PodPaths.of(spec.name)):
        _, summary = bring_up(pod_file)
        typer.echo(summary)


