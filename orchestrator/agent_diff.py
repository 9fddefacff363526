"""`podctl diff`: what an agent changed, committed or not, against where it started.

For an agent in its own worktree that is everything since the worktree's starting commit; for an
agent in the main checkout it is what is uncommitted in its folder (mixed with anyone else's work
there, which is why worktrees exist). Untracked files count, ignored ones do not; a temporary index
keeps the user's and the agent's own index untouched.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from podctl.broker import gitdiff
from podctl.broker.paths import PodPaths
from podctl.pods import worktree
from podctl.pods.errors import PodctlError
from podctl.pods.spec import PodSpec


@dataclass(frozen=True)
class DiffPlan:
    cwd: Path
    old: str
    new: str
    note: str
    """What is being compared, for stderr."""


def plan(paths: PodPaths, spec: PodSpec | None, agent: str) -> DiffPlan:
    return asyncio.run(_plan(paths, spec, agent))


async def _plan(paths: PodPaths, spec: PodSpec | None, agent: str) -> DiffPlan:
    record = worktree.read_record(paths.root, agent)
    in_pod = spec is not None and agent in spec.agents
    if record is not None and (not in_pod or (spec is not None and spec.agent_branch(agent) is not None)):
        top = Path(record.path)
        if not top.is_dir():
            raise PodctlError(f"the worktree of {agent} ({top}) is gone; `podctl up` makes it again on {record.branch}")
        new = await gitdiff.snapshot(top)
        gone = "" if in_pod or spec is None else f" (kept: {agent} was removed from the pod)"
        return DiffPlan(top, record.base, new,
                        f"{agent}: worktree {top} on {record.branch}{gone}, changes since {record.base[:12]}")
    if spec is None or agent not in spec.agents:
        known = ", ".join(spec.agents) if spec else "unknown: the pod has no readable pod file"
        raise PodctlError(f"no agent {agent!r} in pod {paths.pod} (agents: {known})")
    if spec.agent_branch(agent) is not None:
        raise PodctlError(f"{agent} gets its worktree when it starts: `podctl up {spec.source or spec.name}`")
    workdir = spec.declared_workdir(agent)
    if not await gitdiff.is_repo(workdir):
        raise PodctlError(f"{agent} works in {workdir}, which is not in a git repository: there is no diff to show")
    old, new = await gitdiff.base_tree(workdir), await gitdiff.snapshot(workdir)
    note = f"{agent} has no worktree: uncommitted changes in {workdir}, whoever made them"
    if record is not None:
        note += (f"; its former worktree {record.path} ({record.branch}) is kept:"
                 f" `git -C {record.path} diff {record.base[:12]}` shows what it holds")
    return DiffPlan(workdir, old, new, note)


def argv(diff: DiffPlan, extra: list[str]) -> list[str]:
    """git diff between the two trees, run with the terminal so git colours and pages as the user set it up."""
    return ["git", "diff", *extra, diff.old, diff.new]
