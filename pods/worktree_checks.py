"""Pod checks for `worktree:`: a repository to make it from, a usable branch that no other checkout holds.

They run git (read-only) and so only for pods that ask for worktrees; like the other whole-pod
checks they read the merged raw data and leave wrong types to the schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import worktree

if TYPE_CHECKING:
    from .checks import Context


def check_worktrees(data: dict[str, Any], base_dir: Path, state_root: Path, ctx: Context) -> None:
    agents, pod = data.get("agents"), data.get("name")
    if not isinstance(agents, dict) or not isinstance(pod, str):
        return
    default = data.get("worktrees") is True
    pod_dir = data.get("workdir", ".")
    if not isinstance(pod_dir, str):
        return
    taken: dict[str, str] = {}
    checked_out: dict[Path, dict[str, Path]] = {}
    for agent, spec in agents.items():
        if not isinstance(spec, dict):
            continue
        value = spec.get("worktree", default)
        if value is None:
            value = default
        if value is False or not isinstance(value, (bool, str)):
            continue
        path: tuple[Any, ...] = ("agents", agent, "worktree") if "worktree" in spec else ("worktrees",)
        branch = value if isinstance(value, str) else worktree.default_branch(pod, str(agent))
        if branch in taken:
            ctx.add(path, f"agent {agent}: branch {branch!r} is also the worktree branch of {taken[branch]};"
                          " give each agent a branch of its own")
            continue
        taken[branch] = str(agent)
        workdir = spec.get("workdir")
        declared = (base_dir / pod_dir / (workdir if isinstance(workdir, str) else "")).resolve()
        problem = _problem(str(agent), branch, declared, worktree.checkout_dir(state_root / pod, str(agent)),
                           checked_out)
        if problem:
            ctx.add(path, problem)


def _problem(agent: str, branch: str, declared: Path, own: Path, checked_out: dict[Path, dict[str, Path]]) -> str | None:
    if worktree.SPECIAL_REF.fullmatch(branch):
        return (f"agent {agent}: {branch!r} is a name git reads as something else (@ and HEAD are the current commit,"
                f" *_HEAD git's own refs, refs/... a full ref name), so `git merge {branch}` would not merge the"
                " agent's work: name the branch otherwise")
    repo = worktree.repo_root(declared)
    if repo is None:
        return (f"agent {agent}: `worktree` needs a git repository, and {declared} is in none;"
                " run `git init` and commit there, or set `worktree: false`")
    try:
        worktree.git(repo, "check-ref-format", "--branch", branch)
    except worktree.GitFailed:
        return f"agent {agent}: {branch!r} is not a valid git branch name (see `git check-ref-format --help`)"
    try:
        worktree.git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except worktree.GitFailed:
        return (f"agent {agent}: the repository {repo} has no commit yet, and a worktree starts from one;"
                " commit something first, or set `worktree: false`")
    if repo not in checked_out:
        checked_out[repo] = _branches_checked_out(repo)
    holder = checked_out[repo].get(branch)
    if holder is not None and holder != own.resolve():
        return (f"agent {agent}: branch {branch!r} is checked out at {holder}, and a branch can be checked out"
                f" in one place only; name another branch (`worktree: {branch}-{agent}`), or switch {holder}"
                " to another branch")
    return None


def _branches_checked_out(repo: Path) -> dict[str, Path]:
    """Branch name -> the folder it is checked out in, for every worktree of the repository."""
    try:
        out = worktree.git(repo, "worktree", "list", "--porcelain")
    except worktree.GitFailed:
        return {}
    found: dict[str, Path] = {}
    where: Path | None = None
    for line in out.splitlines():
        if line.startswith("worktree "):
            where = Path(line.removeprefix("worktree ")).resolve()
        elif line.startswith("branch refs/heads/") and where is not None:
            found[line.removeprefix("branch refs/heads/")] = where
    return found
