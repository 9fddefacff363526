"""Where an agent's own git worktree lives, which branch it is on, and what podctl records about it.

Standard library only: the spec, the pod checks, the broker's rules and `podctl status` (on the
fast path) all read it. Making and removing worktrees is the orchestrator's job
(orchestrator/worktrees.py); this module only runs git to read.

```
$PODCTL_HOME/<pod>/worktrees/<agent>/        the worktree (a checkout of the whole repository)
$PODCTL_HOME/<pod>/worktrees/<agent>.json    its record: repository, branch, starting commit
```
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from .layout import WORKTREES

FOLDER = WORKTREES
GIT_TIMEOUT_S = 30.0
GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")
"""Inherited from a git hook that started podctl, these would point git at another repository:
every git podctl runs (here and broker/gitdiff.py) goes without them."""


class GitFailed(RuntimeError):
    """git exited non-zero (or could not run); the message has git's own words."""


def git(cwd: Path, *args: str, timeout: float = GIT_TIMEOUT_S) -> str:
    """Run git in `cwd` and return its stdout; raise GitFailed with its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
            timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitFailed(f"git {' '.join(args)} in {cwd}: {exc}") from None
    if done.returncode != 0:
        raise GitFailed(f"git {' '.join(args)} in {cwd}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


SPECIAL_REF = re.compile(r"@|[A-Z_]*HEAD|refs/.*", re.DOTALL)
"""Branch names git reads as something else: `@` (HEAD; `git check-ref-format --branch` lets it
through), HEAD and git's own `*_HEAD` refs (ORIG_HEAD, FETCH_HEAD, ...: found before refs/heads/),
and full ref names. `git merge NAME` would not merge the agent's work."""


def default_branch(pod: str, agent: str) -> str:
    return f"podctl/{pod}/{agent}"


def repo_root(path: Path) -> Path | None:
    """The top folder of the git work tree `path` is in (its nearest existing folder if it does not exist yet)."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    for folder in (probe, *probe.parents):
        if (folder / ".git").exists():
            return folder
    return None


def folder(pod_root: Path) -> Path:
    return pod_root / FOLDER


def checkout_dir(pod_root: Path, agent: str) -> Path:
    return folder(pod_root) / agent


def record_file(pod_root: Path, agent: str) -> Path:
    return folder(pod_root) / f"{agent}.json"


@dataclass(frozen=True)
class Placement:
    """Where a worktree agent runs, worked out from the pod file alone (no git run)."""

    repo: Path
    """The main checkout's top folder: the repository the worktree is made from."""
    path: Path
    """The worktree's top folder."""
    branch: str
    prefix: str
    """The agent's folder inside the repository ("" at its top), the same in the worktree."""

    @property
    def workdir(self) -> Path:
        return self.path / self.prefix if self.prefix else self.path

    def record(self) -> Record | None:
        """What was recorded when the worktree was made (None before `up` made it)."""
        return read_record(self.path.parent.parent, self.path.name)


def place(pod_root: Path, agent: str, branch: str, declared: Path) -> Placement | None:
    """The worktree of an agent whose pod file workdir is `declared`; None if that is in no git work tree."""
    repo = repo_root(declared)
    if repo is None:
        return None
    prefix = os.path.relpath(declared, repo)
    return Placement(repo=repo, path=checkout_dir(pod_root, agent), branch=branch,
                     prefix="" if prefix == "." else prefix)


@dataclass(frozen=True)
class Record:
    """What podctl made, written when the worktree is made: enough to diff, report and remove it."""

    agent: str
    repo: str
    path: str
    branch: str
    base: str
    """The commit the agent started from: its changes are everything since."""
    owned: bool
    """podctl made the branch (so removing a worktree whose work is merged also removes the branch)."""
    created: float


def write_record(pod_root: Path, record: Record) -> None:
    path = record_file(pod_root, record.agent)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_record(pod_root: Path, agent: str) -> Record | None:
    """The agent's record; None if there is none, or it is not a record of this agent."""
    try:
        data = json.loads(record_file(pod_root, agent).read_text(encoding="utf-8"))
        record = Record(**data)
    except (OSError, ValueError, TypeError):
        return None
    fields = (record.agent, record.repo, record.path, record.branch, record.base)
    if record.agent != agent or not all(isinstance(f, str) for f in fields):
        return None
    return record


def records(pod_root: Path) -> list[Record]:
    """Every worktree podctl made for this pod, by agent name."""
    try:
        names = sorted(p.stem for p in folder(pod_root).glob("*.json"))
    except OSError:
        return []
    return [r for r in (read_record(pod_root, n) for n in names) if r is not None]


@dataclass(frozen=True)
class Changes:
    """An agent's work in its worktree, as `status` and removal see it."""

    files: list[str]
    """Paths (from the worktree's top) that differ from the starting commit, committed or not, untracked included."""
    uncommitted: list[str]
    """`git status --porcelain` lines: what removing the worktree would lose."""
    unmerged: list[str]
    """Commits on the branch that the main checkout's HEAD does not have (`<hash> <subject>`)."""
    changed_branch: bool
    """The branch moved from its starting commit."""


def changes(record: Record) -> Changes:
    """Read the worktree's state with git (raises GitFailed when the worktree or repository is gone)."""
    path = Path(record.path)
    tracked = git(path, "diff", "--name-only", "-z", "--no-renames", record.base, "--")
    untracked = git(path, "ls-files", "-z", "--others", "--exclude-standard")
    files = sorted({n for n in (tracked + untracked).split("\0") if n})
    status = git(path, "status", "--porcelain", "--untracked-files=all")
    tip = git(path, "rev-parse", "HEAD").strip()
    unmerged: list[str] = []
    if tip != record.base:
        head = git(Path(record.repo), "rev-parse", "HEAD").strip()
        log = git(path, "log", "--format=%h %s", f"{head}..{tip}")
        unmerged = [line for line in log.splitlines() if line]
    return Changes(files=files, uncommitted=[line for line in status.splitlines() if line],
                   unmerged=unmerged, changed_branch=tip != record.base)


def summary(pod_root: Path, agent: str) -> dict[str, object] | None:
    """The agent's worktree for `status`: path, branch and how many files it changed; None without one."""
    record = read_record(pod_root, agent)
    if record is None:
        return None
    out: dict[str, object] = {"path": record.path, "branch": record.branch, "base": record.base, "repo": record.repo}
    try:
        found = changes(record)
    except GitFailed as exc:
        out["changed_files"] = out["uncommitted"] = None
        out["problem"] = str(exc)
        return out
    out["changed_files"], out["uncommitted"] = len(found.files), len(found.uncommitted)
    return out
