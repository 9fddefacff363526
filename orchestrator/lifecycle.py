"""Bringing a pod up, restarting an agent and editing a running pod's file, one applier at a time.

The CLI calls these and renders what they return; every failure is a PodctlError that says what
to do. `up` of a running pod from another pod file with the same name is refused unless
`replace` is given: the pod file recorded at `up` is the pod's one desired state.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from podctl.broker import wire
from podctl.broker.paths import PodPaths
from podctl.pods.errors import PodctlError
from podctl.pods.load import PodFileError, load_pod, load_pod_text, read_pod_text
from podctl.pods.spec import PodSpec

from . import pod, podref, processes, reconcile, tmux
from .launch import missing_clis
from .plan import Step

EARLY_EXIT_S = 1.5
"""How long `up` watches the agents it started for a CLI that dies at once (bad arguments, a
broken config, a missing dependency: such a CLI dies at once); later deaths are the
supervisor's to report (the transcript, `status`)."""


@dataclass
class AgentFailure:
    agent: str
    exit_status: int | None
    last_lines: list[str] = field(default_factory=list)
    more: str = ""

    def describe(self) -> str:
        status = f"exited with status {self.exit_status}" if self.exit_status is not None else "exited"
        lines = "".join(f"\n    | {line}" for line in self.last_lines)
        more = f"\n    more: {self.more}" if self.more else ""
        return f"✗ agent {self.agent} {status} right after it started:{lines or ' (it printed nothing)'}{more}"


@dataclass
class UpResult:
    spec: PodSpec
    outcome: reconcile.Outcome
    failures: list[AgentFailure] = field(default_factory=list)
    replaced: Path | None = None
    """The pod file the pod ran from before `--replace`."""


def read_pod_file(path: Path) -> tuple[str, PodSpec]:
    """The file's text and its spec (loaded from that very text)."""
    text = read_pod_text(path)
    return text, load_pod_text(text, path)


def preflight(spec: PodSpec, site: str | None = None) -> None:
    tmux.server()
    problems = missing_clis(spec, site)
    if problems:
        raise PodctlError("cannot bring the pod up:\n  " + "\n  ".join(problems))


@dataclass
class Progress:
    """What `up` reports while it works: each step as it is done, and the wait for new agents to be ready."""

    step: Callable[[Step], None] | None = None
    waiting: Callable[[list[str], float], None] | None = None
    """Called about every 0.1s with the agents not ready yet and the seconds waited; [] when done."""
    note: Callable[[str], None] | None = None
    """Something `up` did besides its steps (the bridge it started)."""


def choose_site(spec: PodSpec, paths: PodPaths, wanted: str | None) -> str | None:
    """The site this machine runs of a pod across machines: `--site`, else PODCTL_SITE, else the one it ran,
    else the pod's only site. None for a pod without a bridge (every agent runs here)."""
    if spec.bridge is None:
        if wanted:
            raise PodctlError(f"--site {wanted}: pod {spec.name} has no `bridge:`, so it runs whole on this machine"
                              " (docs/sites.md says how to split a pod across machines)")
        return None
    sites = spec.sites()
    recorded = paths.read_site()
    site = wanted or os.environ.get("PODCTL_SITE") or recorded or (sites[0] if len(sites) == 1 else None)
    if site is None:
        raise PodctlError(f"pod {spec.name} runs across sites {', '.join(sites)}: say which one this machine runs,"
                          f" `podctl up --site NAME` (or PODCTL_SITE=NAME)")
    if site not in sites:
        raise PodctlError(f"pod {spec.name} has no site {site!r} (its sites: {', '.join(sites)})")
    if recorded != site and pod.running(paths):
        now = f"as site {recorded}" if recorded else "on this machine alone"
        raise PodctlError(f"pod {spec.name} runs here {now}: `podctl down {spec.name}` first to run site {site}")
    return site


def bring_up(
    pod_file: Path, force: bool = False, replace: bool = False, on_wait: Callable[[str], None] | None = None,
    progress: Progress | None = None, *, site: str | None = None,
) -> UpResult:
    pod_file = pod_file.resolve()
    text, spec = read_pod_file(pod_file)
    paths = PodPaths.of(spec.name).ensure()
    site = choose_site(spec, paths, site)
    preflight(spec, site)
    replaced = None
    with pod.applying(paths, "podctl up", on_wait=on_wait):
        if site != paths.read_site():
            paths.write_site(site)
        following = pod.following_file(paths)
        if following is not None and following != pod_file and pod.running(paths):
            if not replace:
                raise PodctlError(
                    f"pod {spec.name} is running from {following}, and {pod_file} has the same name:"
                    f" `podctl up --replace {pod_file}` switches the running pod to this file (agents not in it"
                    f" are removed), or give one of the two files another `name:`"
                )
            replaced = following
        try:
            if replaced is not None:
                processes.stop(processes.supervisor_pid(paths))
            steps = reconcile.compute(spec, paths, force=force)
            outcome = reconcile.apply(spec, paths, steps, on_step=progress.step if progress else None)
            summary = outcome.summary()
            if replaced is not None:
                reconcile.report(paths, f"podctl up --replace: the pod now follows {pod_file} (was {replaced})")
            if outcome.done or outcome.waiting:
                reconcile.report(paths, f"podctl up:\n{summary}")
            podref.record_file(paths, pod_file)
            pod.record_applied(paths, pod.file_digest(text), True, summary, spec)
            start_bridge(spec, paths, pod_file, site, progress)
            processes.start_supervisor(pod_file, paths)
        except KeyboardInterrupt:
            raise UpInterrupted(unfinished(paths, pod_file, "podctl up was interrupted")) from None
        except PodctlError as exc:
            left = unfinished(paths, pod_file, str(exc))
            if left == str(exc):
                raise
            raise PodctlError(left) from None
    started = [s.agent for s in outcome.done if s.kind in ("add_agent", "restart_agent") and s.agent]
    waiting = progress.waiting if progress else None
    return UpResult(spec, outcome, early_failures(paths, started, on_wait=waiting), replaced)


def start_bridge(spec: PodSpec, paths: PodPaths, pod_file: Path, site: str | None, progress: Progress | None) -> None:
    """A pod across machines: start this site's bridge to the others, unless it runs already."""
    from podctl.orchestrator.nats_link import bridge_url

    if site is not None and spec.bridge is not None and processes.start_bridge(pod_file, paths):
        bridged = f"started the bridge of site {site} to {bridge_url(spec.bridge)}"
        reconcile.report(paths, f"podctl up: {bridged}")
        if progress is not None and progress.note is not None:
            progress.note(bridged)


class UpInterrupted(PodctlError):
    """Ctrl-C during `up`: what was left running has been said."""

    exit_code = 130


def unfinished(paths: PodPaths, pod_file: Path, why: str) -> str:
    """`why`, and what an `up` that did not finish left running, with how to finish or undo it
    (`why` alone when nothing of the pod runs, or all of it does)."""
    parts = pod.parts(paths)
    state = pod.state_word(parts)
    if state in ("down", "up"):
        return why
    running = [name for name, on in parts.items() if on]
    stopped = [name for name, on in parts.items() if not on]
    return (f"{why}\npod {paths.pod} is left {state} ({', '.join(running)} running; {', '.join(stopped)} not):"
            f" `podctl up {pod_file}` finishes it, `podctl down {paths.pod}` stops it")


@dataclass
class PlanNotes:
    """What `plan` says besides the steps: whether `up` would be refused, and what `up` makes or
    drops that no step names (worktrees and branches; agents of a pod that is down)."""

    refusal: str | None = None
    lines: list[str] = field(default_factory=list)


def plan_notes(spec: PodSpec, paths: PodPaths) -> PlanNotes:
    from podctl.broker.queries import StoreError
    from podctl.broker.readonly import ReadOnlyStore

    notes = PlanNotes()
    if not paths.is_pod_folder():
        notes.lines = _worktrees_made(spec, paths)
        return notes
    following = pod.following_file(paths)
    if following is not None and following != spec.source and pod.running(paths):
        notes.refusal = (f"`podctl up {spec.source}` will be refused: pod {spec.name} is running from {following}"
                         f" (`podctl up --replace {spec.source}` switches it to this file, with these changes)")
    notes.lines = _worktrees_made(spec, paths)
    if not processes.broker_running(paths):
        try:
            with ReadOnlyStore(paths.db) as store:
                known = [row["name"] for row in store.overview()["agents"] if not row["removed"]]
        except StoreError:
            known = []
        notes.lines += [f"remove agent {name}: no longer in the pod file (its history is kept)"
                        for name in known if name not in spec.agents]
    return notes


def _worktrees_made(spec: PodSpec, paths: PodPaths) -> list[str]:
    """The worktrees (and branches) `up` will make: those of agents that have none yet."""
    from podctl.pods.worktree import GitFailed, git, read_record

    lines = []
    for name in spec.agents:
        try:
            placement = spec.agent_worktree(name)
        except PodctlError:
            continue
        record = read_record(paths.root, name)
        if placement is None or (record is not None and Path(record.path, ".git").exists()):
            continue
        try:
            git(placement.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{placement.branch}")
            branch = f"on its existing branch {placement.branch}"
        except GitFailed:
            branch = f"on a new branch {placement.branch}"
        lines.append(f"make a worktree for {name}: {placement.path}, from {placement.repo}'s HEAD, {branch}")
    return lines


def early_failures(
    paths: PodPaths, agents: list[str], within: float = EARLY_EXIT_S,
    on_wait: Callable[[list[str], float], None] | None = None,
) -> list[AgentFailure]:
    """Agents among `agents` whose CLI died within `within` seconds of starting.

    Watching stops early once every agent's MCP server has announced itself (it is up), or one
    of them died and the others are up. `on_wait` hears which agents are not ready yet."""
    if not agents:
        return []
    start = time.monotonic()
    srv = tmux.server()
    while True:
        ready = _tools_ready(paths)  # first: a busy broker may take its time, and the panes are looked at after it
        windows = tmux.windows(srv, paths.pod)
        dead = [a for a in agents if a in windows and windows[a].dead]
        if on_wait is not None:
            on_wait([a for a in agents if a not in ready and a not in dead], time.monotonic() - start)
        if (dead and all(a in dead or a in ready for a in agents)) or time.monotonic() >= start + within:
            break
        if not dead and all(a in ready for a in agents):
            return []
        time.sleep(0.1)
    settle = time.monotonic() + 1.0
    while any(windows[a].exit_status is None for a in dead) and time.monotonic() < settle:
        time.sleep(0.05)  # tmux marks a pane dead a moment before it records the exit status
        windows = tmux.windows(srv, paths.pod)
    failures = []
    for agent in dead:
        screen = pod.save_exit_screen(paths, agent)
        reason = pod.exit_reason(paths, agent, lines=6) or {}
        failures.append(AgentFailure(
            agent, windows[agent].exit_status, reason.get("last_lines", []) if screen else [], reason.get("more", ""),
        ))
    return failures


def _tools_ready(paths: PodPaths) -> set[str]:
    try:
        with reconcile.user_client(paths, timeout=2.0) as client:
            return {a["name"] for a in client.call("status")["agents"] if a.get("tools_ready")}
    except (OSError, wire.BrokerError):
        return set()


def restart_agent(paths: PodPaths, agent: str, on_wait: Callable[[str], None] | None = None) -> list[AgentFailure]:
    pod_file = podref.recorded_file(paths)
    if pod_file is None:
        raise PodctlError(f"pod {paths.pod} has no recorded pod file: bring it up with `podctl up POD_FILE`")
    _, spec = read_pod_file(pod_file)
    if agent not in spec.agents:
        raise PodctlError(f"no agent {agent!r} in pod {spec.name} (agents: {', '.join(spec.agents)})")
    site = paths.read_site()
    if agent not in spec.local_agents(site):
        raise PodctlError(f"agent {agent} runs at site {spec.site_of(agent)}, not here (site {site}): restart it there")
    with pod.applying(paths, f"podctl restart {agent}", on_wait=on_wait):
        state = pod.state_word(pod.parts(paths))
        if state != "up":
            raise PodctlError(
                f"pod {paths.pod} is {state}: nothing restarted; `podctl up {pod_file}` brings it up"
                f" ({agent} starts afresh with it)"
            )
        reconcile.restart_agent(spec, paths, agent)
        reconcile.report(paths, f"restarted {agent} (podctl restart)")
    return early_failures(paths, [agent])


@dataclass
class EditResult:
    pod_file: Path
    applied: str | None
    """What the running pod did about it (None: the pod is not up)."""


def edit_pod_file(pod_file: Path, change: Callable[[str], str]) -> EditResult:
    """Change the pod file's text through `change`, refusing any edit that would leave the file
    invalid, then let the running pod follow it.

    When the supervisor runs it is the one applier: this waits for what it applied and returns
    its summary, once."""
    text, spec = read_pod_file(pod_file)
    new_text = change(text)
    try:
        load_pod_text(new_text, pod_file)
    except PodFileError as exc:
        raise PodctlError(f"not changed: {pod_file.name} would be invalid:\n{exc}") from None
    _replace(pod_file, new_text)
    paths = PodPaths.of(spec.name)
    if not paths.is_pod_folder() or not pod.running(paths):
        return EditResult(pod_file, None)
    supervisor = processes.supervisor_pid(paths)
    if supervisor is not None and podref.recorded_file(paths) == pod_file.resolve():
        os.kill(supervisor, signal.SIGHUP)
        record = pod.wait_applied(paths, pod_file, pod.file_digest(new_text))
        if record.get("superseded"):
            return EditResult(pod_file, "the file was saved again meanwhile; the pod follows the latest save")
        if not record.get("ok"):
            raise PodctlError(record.get("summary") or "the change was not applied")
        return EditResult(pod_file, record.get("summary", ""))
    result = bring_up(pod_file)
    return EditResult(pod_file, result.outcome.summary())


def _replace(pod_file: Path, text: str) -> None:
    """Write the pod file at once (a temporary file renamed over it, with its mode): a reader never
    sees half of it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{pod_file.name}.", dir=pod_file.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, pod_file.stat().st_mode & 0o777)
        os.replace(tmp, pod_file)
    finally:
        tmp.unlink(missing_ok=True)


def pod_file_of(arg: str) -> Path:
    """The pod file of a POD argument: the file itself, or the one recorded for the named pod."""
    candidate = Path(arg)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate.resolve()
    paths = pod.find(arg)
    recorded = podref.recorded_file(paths)
    if recorded is None:
        raise PodctlError(f"pod {paths.pod} has no recorded pod file: bring it up with `podctl up POD_FILE`")
    if not os.path.lexists(recorded):
        raise PodctlError(
            f"the pod file of pod {paths.pod} is gone: it was brought up from {recorded}. Put the file back there,"
            f" or `podctl up FILE` with another pod file named {paths.pod} (`--replace` while the pod runs)"
        )
    return recorded


def pod_paths_of(arg: str, pod_file: Path) -> PodPaths | None:
    """The state folder of a POD argument (a pod name, or its pod file); None if the file names no valid pod."""
    if Path(arg).resolve() != pod_file:
        return pod.find(arg)
    try:
        return PodPaths.of(load(pod_file).name)
    except PodctlError:
        return None


def down(paths: PodPaths, on_wait: Callable[[str], None] | None = None) -> list[str]:
    with pod.applying(paths, "podctl down", on_wait=on_wait):
        return pod.stop(paths)


def load(path: Path) -> PodSpec:
    return load_pod(path)
