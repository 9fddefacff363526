"""Making and removing agents' git worktrees, and what removing one would lose.

podctl only ever adds a worktree (and, the first time, its branch) to the user's repository and
removes what it added: it never checks out, resets or stashes anything in the main checkout, and
never touches its index. Only the standard library and pods.worktree, so `status` stays fast.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from podctl.broker.paths import PodPaths, ensure_private_dir
from podctl.pods import worktree
from podctl.pods.errors import PodctlError
from podctl.pods.spec import PodSpec
from podctl.pods.worktree import GitFailed, Placement, Record, git


class WorktreeError(PodctlError):
    """A worktree that could not be made or removed; the message has git's words and what to do."""


def ensure(spec: PodSpec, paths: PodPaths, agent: str) -> Record | None:
    """The agent's worktree, made at its repository's current HEAD if it does not exist yet; None without one.

    An existing worktree (and its uncommitted work) is kept as it is across down, up and restart.
    """
    placement = spec.agent_worktree(agent)
    if placement is None:
        return None
    record = worktree.read_record(paths.root, agent)
    if record is not None and Path(record.path, ".git").exists() and record.branch == placement.branch:
        return record
    ensure_private_dir(worktree.folder(paths.root))
    try:
        record = _make(paths, agent, placement)
    except GitFailed as exc:
        raise WorktreeError(f"agent {agent}: cannot make its worktree at {placement.path}: {exc}") from None
    worktree.write_record(paths.root, record)
    return record


def _make(paths: PodPaths, agent: str, placement: Placement) -> Record:
    repo, path, branch = placement.repo, placement.path, placement.branch
    git(repo, "worktree", "prune")  # forget worktrees whose folder is gone, so their branch can be checked out again
    if _is_worktree_of(path, repo):
        current = git(path, "rev-parse", "--abbrev-ref", "HEAD").strip()
        if current != branch:
            raise WorktreeError(
                f"agent {agent}: its worktree {path} is on branch {current}, and the pod file now says {branch};"
                f" set `worktree: {current}` again, or remove the worktree (`podctl remove`, or `git worktree remove"
                f" {path}` once its work is merged) so that podctl makes it anew on {branch}"
            )
    elif _branch_exists(repo, branch):
        git(repo, "worktree", "add", "--quiet", str(path), branch)
    else:
        git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), "HEAD")
    head = git(repo, "rev-parse", "HEAD").strip()
    tip = git(path, "rev-parse", "HEAD").strip()
    base = git(repo, "merge-base", head, tip).strip() or tip
    return Record(agent=agent, repo=str(repo), path=str(path), branch=branch, base=base,
                  owned=branch == worktree.default_branch(paths.pod, agent), created=time.time())


def _branch_exists(repo: Path, branch: str) -> bool:
    try:
        git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    except GitFailed:
        return False
    return True


def _is_worktree_of(path: Path, repo: Path) -> bool:
    if not (path / ".git").exists():
        return False
    try:
        common = git(path, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
        mine = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    except GitFailed:
        return False
    return Path(common).resolve() == Path(mine).resolve()


@dataclass(frozen=True)
class Removal:
    record: Record
    lost: list[str]
    """What removing it would lose, one line each; empty when it is safe."""


def removal(record: Record) -> Removal:
    """Check what removing the worktree would lose: uncommitted changes, commits the main HEAD does not have."""
    if not Path(record.path).exists():
        return Removal(record, [])
    try:
        state = worktree.changes(record)
    except GitFailed as exc:
        return Removal(record, [f"cannot read its state ({exc})"])
    lost = [f"uncommitted: {line}" for line in state.uncommitted]
    lost += [f"commit not merged into {record.repo}'s HEAD: {line}" for line in state.unmerged]
    return Removal(record, lost)


def refusal(removals: list[Removal]) -> str | None:
    """What to tell the user when some worktrees hold work; None when all can go."""
    unsafe = [r for r in removals if r.lost]
    if not unsafe:
        return None
    lines = []
    for item in unsafe:
        record = item.record
        lines.append(f"the worktree of {record.agent} at {record.path} (branch {record.branch}) holds work:")
        lines += [f"  {line}" for line in item.lost[:20]]
        if len(item.lost) > 20:
            lines.append(f"  ... and {len(item.lost) - 20} more")
        lines.append(f"  keep it: commit there, then `git merge {record.branch}` in {record.repo}")
    lines.append("or give --force to remove anyway: branches are kept, uncommitted changes are lost")
    return "\n".join(lines)


def remove(paths: PodPaths, item: Removal, force: bool = False) -> str:
    """Remove the worktree (and its branch when podctl made it and nothing on it is unmerged); say what was done."""
    record = item.record
    repo, path = Path(record.repo), Path(record.path)
    said = f"removed the worktree of {record.agent} ({path})"
    if repo.exists():
        try:
            if path.exists():
                git(repo, "worktree", "remove", *(["--force", "--force"] if force or item.lost else []), str(path))
            git(repo, "worktree", "prune")
        except GitFailed as exc:
            raise WorktreeError(f"cannot remove the worktree of {record.agent}: {exc}") from None
        if record.owned and not item.lost and _branch_exists(repo, record.branch):
            try:
                git(repo, "branch", "-D", record.branch)
                said += f" and its branch {record.branch}"
            except GitFailed as exc:
                said += f"; its branch {record.branch} is kept ({exc})"
        else:
            said += f"; its branch {record.branch} is kept"
    if path.exists():
        shutil.rmtree(path)
    worktree.record_file(paths.root, record.agent).unlink(missing_ok=True)
    return said
