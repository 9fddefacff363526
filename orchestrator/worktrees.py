"""Making and removing agents' git worktrees, and what removing one would lose.

podctl only ever adds a worktree (and, the first time, its branch) to the user's repository and
removes what it added: it never checks out, resets or stashes anything in the main checkout, and
never touches its index. Only the standard library and pods.worktree, so `status` stays fast.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from podctl.broker.paths import PodPaths, ensure_private_dir
from podctl.pods import worktree
from podctl.pods.errors import PodctlError
from podctl.pods.spec import NAME_RE, PodSpec
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
    if (record is not None and Path(record.path) == placement.path and Path(record.path, ".git").exists()
            and record.branch == placement.branch):
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
    problem: str | None = None
    """Why the record does not check out (it is then reported and nothing it names is touched)."""


def unproven(paths: PodPaths, record: Record) -> str | None:
    """Why podctl cannot prove it made the worktree a record names; None when it can.

    A record is a file in the pod's folder, so it may have been edited: a worktree is removed only
    when its path is the agent's folder `worktrees/<agent>` (resolved, no symlink on the way) and
    the record's repository lists that folder as one of its worktrees (`git worktree list`)."""
    if not NAME_RE.fullmatch(record.agent) or not worktree.record_file(paths.root, record.agent).is_file():
        return f"it names agent {record.agent!r}, which has no record file of that name"
    expected = worktree.checkout_dir(paths.root, record.agent)
    if Path(record.path) != expected:
        return f"its path {record.path} is not the agent's worktree folder {expected}"
    real = Path(os.path.realpath(paths.root)) / worktree.FOLDER / record.agent
    if os.path.realpath(expected) != str(real) or expected.is_symlink():
        return f"{expected} is a symbolic link, or under one"
    repo = Path(record.repo)
    if not repo.is_dir():
        return f"its repository {record.repo} is gone"
    try:
        listing = git(repo, "worktree", "list", "--porcelain")
    except GitFailed as exc:
        return f"its repository {record.repo} cannot list its worktrees ({exc})"
    listed = {os.path.realpath(line.removeprefix("worktree ")) for line in listing.splitlines()
              if line.startswith("worktree ")}
    if str(real) not in listed:
        return f"its repository {record.repo} has no worktree at {expected}"
    return None


def removal(paths: PodPaths, record: Record) -> Removal:
    """Check that the record checks out, then what removing the worktree would lose: uncommitted
    changes, commits the main HEAD does not have."""
    problem = unproven(paths, record)
    if problem is not None:
        return Removal(record, [], problem)
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


def left_alone(paths: PodPaths, item: Removal) -> str:
    """What is said of a record that does not check out: nothing it names is touched."""
    record_path = worktree.record_file(paths.root, item.record.agent)
    return (f"the worktree record {record_path} does not check out ({item.problem}): left alone, nothing it names"
            " is removed; look at it, then remove what you no longer need yourself")


def remove(paths: PodPaths, item: Removal, force: bool = False) -> str:
    """Remove the worktree through git (and its branch when podctl made it and nothing on it is
    unmerged); say what was done. A record that does not check out removes nothing."""
    record = item.record
    if item.problem is not None:
        return left_alone(paths, item)
    repo, path = Path(record.repo), Path(record.path)
    said = f"removed the worktree of {record.agent} ({path})"
    try:
        if path.exists():
            git(repo, "worktree", "remove", *(["--force", "--force"] if force or item.lost else []), str(path))
        git(repo, "worktree", "prune")
    except GitFailed as exc:
        raise WorktreeError(f"cannot remove the worktree of {record.agent}: {exc}") from None
    ours = record.owned and record.branch == worktree.default_branch(paths.pod, record.agent)
    if ours and not item.lost and _branch_exists(repo, record.branch):
        try:
            git(repo, "branch", "-D", record.branch)
            said += f" and its branch {record.branch}"
        except GitFailed as exc:
            said += f"; its branch {record.branch} is kept ({exc})"
    else:
        said += f"; its branch {record.branch} is kept"
    worktree.record_file(paths.root, record.agent).unlink(missing_ok=True)
    return said
