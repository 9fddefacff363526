"""From a pod spec to what the adapters need: an AgentContext per agent, and its fingerprint."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from podctl.broker.paths import PodPaths
from podctl.hooks.adapter import AgentContext, Launch, get_adapter
from podctl.pods.load import MAX_FILE_BYTES, read_regular
from podctl.pods.spec import AgentSpec, Limits, PodSpec

from . import worktrees


def agent_context(spec: PodSpec, paths: PodPaths, name: str) -> AgentContext:
    agent = spec.agents[name]
    script = agent.script
    if isinstance(script, str):
        script = str((spec.base_dir() / script).resolve())
    return AgentContext(
        pod=spec.name, agent=name, cli=agent.cli, role=agent.role, workdir=spec.agent_workdir(name),
        state_dir=paths.root, agent_dir=paths.agent_dir(name), token=paths.issue_token(name),
        model=agent.model, args=tuple(agent.args), env=dict(agent.env), script=script, python=sys.executable,
        permissions=spec.agent_permissions(name), hold_s=spec.limits.permission_hold_s,
    )


def fingerprint(spec: PodSpec, name: str) -> str:
    """What a change to restarts the agent: everything that shapes its process but its role."""
    agent: AgentSpec = spec.agents[name]
    data = agent.model_dump(exclude={"role", "restart", "permissions"})
    data["workdir"] = str(spec.agent_workdir(name))
    if spec.agent_permissions(name) is not None:  # only when set: a pod that sets neither keeps its fingerprint
        data["permissions"] = spec.agent_permissions(name)
    if spec.limits.permission_hold_s != Limits().permission_hold_s:
        data["hold_s"] = spec.limits.permission_hold_s
    if isinstance(agent.script, str):
        path = (spec.base_dir() / agent.script).resolve()
        try:
            data["script_file"] = read_regular(path, MAX_FILE_BYTES).decode("utf-8", "replace")
        except OSError:  # gone, or no regular file (a FIFO would block): the agent reports it when it starts
            data["script_file"] = None
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_and_launch(spec: PodSpec, paths: PodPaths, name: str) -> Launch:
    """Make the agent's worktree if it has one and none exists yet, write its CLI's config, and say how to start it."""
    worktrees.ensure(spec, paths, name)
    ctx = agent_context(spec, paths, name)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    adapter = get_adapter(ctx.cli)
    adapter.prepare(ctx)
    return adapter.launch(ctx)


def install_command(cli: str) -> str:
    """The command that installs the CLI at the version podctl's tests pin ("" if its adapter has none)."""
    return get_adapter(cli).install_command


def install_hint(cli: str) -> str:
    command = install_command(cli)
    return f"install it: {command} (the version podctl's tests pin)" if command else "install it first"


def missing_clis(spec: PodSpec, site: str | None = None) -> list[str]:
    """Agents (this machine's) whose CLI is not installed, as messages saying what to install."""
    problems = []
    for name, agent in spec.local_agents(site).items():
        adapter = get_adapter(agent.cli)
        if shutil.which(adapter.executable) is None and not Path(adapter.executable).is_file():
            problems.append(f"agent {name}: `{adapter.executable}` ({agent.cli}) is not on PATH; {install_hint(agent.cli)}")
    return problems


def workdir_of(spec: PodSpec) -> Path:
    return (spec.base_dir() / spec.workdir).resolve()
