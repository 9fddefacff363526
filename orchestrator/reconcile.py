"""Observe a pod, plan, and apply the plan: brings tmux and the broker to match the pod file."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from podctl.broker import wire
from podctl.broker.paths import USER, PodPaths
from podctl.broker.records import plain
from podctl.pods.durations import seconds
from podctl.pods.spec import PodSpec

from . import processes, tmux
from .launch import fingerprint, prepare_and_launch, workdir_of
from .plan import Observed, Step, config_changes, plan

if TYPE_CHECKING:
    from podctl.broker.records import AgentState

log = logging.getLogger("podctl.orchestrator")


@dataclass
class Outcome:
    done: list[Step] = field(default_factory=list)
    waiting: list[Step] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    """Changes the broker applied as it was handed the spec (plan.settings_changes): limits, prices, routes, rules."""
    pod_file: object = "POD_FILE"

    def summary(self) -> str:
        if not self.done and not self.waiting and not self.settings:
            return "nothing to do: the pod matches its file"
        lines = [f"✓ {s.describe(self.pod_file)}" for s in self.done]
        lines += [f"✓ {change}" for change in self.settings]
        lines += [f"… {s.describe(self.pod_file)}" for s in self.waiting]
        return "\n".join(lines)


def user_client(paths: PodPaths, timeout: float = 5.0) -> wire.Client:
    return wire.Client(paths.socket, USER, paths.read_token(USER), timeout=timeout)


def observe(spec: PodSpec, paths: PodPaths) -> Observed:
    srv = tmux.server()
    broker = processes.broker_alive(paths)
    states: dict[str, str] = {}
    roles: dict[str, str] = {}
    if broker:
        try:
            with user_client(paths) as client:
                for agent in client.call("status")["agents"]:
                    states[agent["name"]] = agent["state"]
                    roles[agent["name"]] = agent["role"]
        except (OSError, wire.BrokerError):
            broker = False
    return Observed(
        broker=broker, session=tmux.session_exists(srv, spec.name), windows=tmux.windows(srv, spec.name),
        states=states, roles=roles,
    )


def desired(spec: PodSpec, site: str | None = None) -> dict[str, tuple[str, str]]:
    """The agents this machine runs (its site's, in a pod across machines), each with its fingerprint and role."""
    return {name: (fingerprint(spec, name), agent.role) for name, agent in spec.local_agents(site).items()}


def route_fields(spec: PodSpec) -> dict[str, dict[str, Any]]:
    return {r.name: {"to": list(r.to), "mode": r.mode, "timeout": r.timeout, "from": list(r.from_) if r.from_ else None}
            for r in spec.routes}


def rule_fields(spec: PodSpec) -> dict[str, dict[str, Any]]:
    """The fields of each rule that the broker reports back (`rules`), to compare."""
    return {r.name: {"on": r.on, "agent": r.agent, "ask": r.ask, "handoff": r.handoff, "max_rounds": r.max_rounds,
                     "cooldown_s": seconds(r.cooldown)} for r in spec.rules}


def config_plan(spec: PodSpec, paths: PodPaths) -> list[str]:
    """The route and rule changes `up` hands the broker (`plan` lists them after the steps)."""
    routes: dict[str, dict[str, Any]] | None = None
    rules: dict[str, dict[str, Any]] | None = None
    if processes.broker_alive(paths):
        try:
            with user_client(paths) as client:
                routes = {r["name"]: plain(r) for r in client.call("status")["routes"]}
                rules = {r["name"]: plain(r) for r in client.call("rules")["rules"]}
        except (OSError, wire.BrokerError):
            routes = rules = None
    return config_changes("route", route_fields(spec), routes) + config_changes("rule", rule_fields(spec), rules)


def compute(spec: PodSpec, paths: PodPaths, force: bool = False) -> list[Step]:
    return plan(desired(spec, paths.read_site()), observe(spec, paths), force=force, view=spec.transcript)


def view_command(pod: str, view: str) -> str:
    """What the pod's `podctl` window runs: the live view (falling back to the plain stream if it
    cannot run, so the window still shows the pod), or the plain stream (`transcript: tail`)."""
    tail = shlex.join([*processes.PODCTL, "tail", pod, "--follow", "--last", "200"])
    if view == "tail":
        return tail
    return f"{shlex.join([*processes.PODCTL, 'ui', pod])} || {tail}"


def apply(spec: PodSpec, paths: PodPaths, steps: list[Step], on_step: Callable[[Step], None] | None = None) -> Outcome:
    """Run the steps that may run now; the ones waiting for a busy agent are returned as such.
    `on_step` hears of each step as soon as it is done (`up` prints it then)."""
    assert spec.source is not None, "a pod applied from a file"
    outcome = Outcome(pod_file=spec.source)
    srv = tmux.server()
    paths.ensure()
    if not any(s.kind == "start_broker" for s in steps) and processes.broker_alive(paths):
        sync(paths, spec)
    for step in steps:
        if step.waits:
            outcome.waiting.append(step)
            continue
        if step.kind == "start_broker":
            processes.start_broker(spec.source, paths)
            sync(paths, spec)
        elif step.kind == "create_session":
            tmux.create_session(srv, spec.name, view_command(spec.name, spec.transcript), spec.transcript,
                                str(workdir_of(spec)))
        elif step.kind == "open_view":
            tmux.open_view(srv, spec.name, view_command(spec.name, spec.transcript), spec.transcript,
                           str(workdir_of(spec)))
        elif step.kind in ("add_agent", "restart_agent") and step.agent:
            restart_agent(spec, paths, step.agent)
        elif step.kind == "remove_agent" and step.agent:
            tmux.kill_window(srv, spec.name, step.agent)
            set_stopped(paths, step.agent)
        outcome.done.append(step)
        if on_step is not None:
            on_step(step)
    return outcome


def restart_agent(spec: PodSpec, paths: PodPaths, name: str) -> None:
    """A fresh CLI process (fresh model context) with the same identity and history."""
    srv = tmux.server()
    launch = prepare_and_launch(spec, paths, name)
    run = tmux.PaneRun(
        argv=launch.argv, env=launch.env, cwd=str(launch.cwd), fingerprint=fingerprint(spec, name),
        status_file=str(paths.agent_dir(name) / "exit-status"),
    )
    if name in tmux.windows(srv, spec.name):
        tmux.respawn_window(srv, spec.name, name, run)
    else:
        tmux.start_window(srv, spec.name, name, run, exists=False)
    set_state(paths, name, "idle")


def sync(paths: PodPaths, spec: PodSpec) -> None:
    """Hand the broker the spec being applied: it never reads a pod file of its own accord."""
    from podctl.pods.transfer import to_wire

    with user_client(paths) as client:
        client.call("sync", **to_wire(spec))


def set_stopped(paths: PodPaths, name: str) -> None:
    set_state(paths, name, "stopped")


def set_state(paths: PodPaths, name: str, state: AgentState) -> None:
    """Tell the broker an agent's CLI started (idle: it can be woken) or stopped.

    Some CLIs run their session-start hook only with the first prompt, so the broker would
    otherwise see a freshly started agent as stopped and never wake it.
    """
    try:
        with user_client(paths) as client:
            client.call("set_state", name=name, state=state)
    except (OSError, wire.BrokerError):
        pass


def report(paths: PodPaths, text: str, level: str = "info") -> None:
    """A line in the pod's transcript (and the broker's log); silent if the broker is down."""
    log.log(logging.WARNING if level != "info" else logging.INFO, "%s", text)
    try:
        with user_client(paths, timeout=2.0) as client:
            client.call("log", text=text, level=level)
    except (OSError, wire.BrokerError):
        pass
