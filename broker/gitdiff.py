"""What changed in an agent's work tree since a rule last looked, without touching the user's git state.

A snapshot is a git tree object written from a temporary index (`GIT_INDEX_FILE`), so untracked
files count, `.gitignore` is honoured, and the user's own index, stash and branches are left alone.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 20.0


class GitError(RuntimeError):
    pass


async def _git(workdir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=workdir, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=GIT_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {' '.join(args)} took over {GIT_TIMEOUT_S:.0f}s in {workdir}") from None
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {workdir}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def is_repo(workdir: Path) -> bool:
    try:
        return (await _git(workdir, "rev-parse", "--is-inside-work-tree")).strip() == "true"
    except (GitError, OSError):
        return False


async def snapshot(workdir: Path) -> str:
    """A tree id for the work tree as it is now (tracked and untracked, minus ignored files)."""
    with tempfile.TemporaryDirectory(prefix="podctl-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        await _git(workdir, "add", "-A", ".", env=env)
        return (await _git(workdir, "write-tree", env=env)).strip()


async def base_tree(workdir: Path) -> str:
    """The tree of HEAD, or git's empty tree in a repository with no commit yet."""
    try:
        return (await _git(workdir, "rev-parse", "HEAD^{tree}")).strip()
    except GitError:
        return (await _git(workdir, "hash-object", "-t", "tree", "/dev/null")).strip()


@dataclass(frozen=True)
class Change:
    files: list[str]
    diff: str


async def changes(workdir: Path, old_tree: str, new_tree: str, files: list[str] | None = None) -> Change:
    names = [n for n in (await _git(workdir, "diff", "--name-only", old_tree, new_tree)).splitlines() if n]
    if files is not None:
        names = [n for n in names if n in files]
    diff = await _git(workdir, "diff", old_tree, new_tree, "--", *names) if names else ""
    return Change(names, diff)
