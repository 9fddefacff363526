"""What changed in an agent's work tree since a rule last looked, without touching the user's git state.

A snapshot is the git tree of the agent's workdir only (a subtree when the workdir is a subfolder of
its repository), written from a temporary index (`GIT_INDEX_FILE`), so untracked files count,
`.gitignore` is honoured, and the user's own index, HEAD, stash and branches are left alone. Diffs
between two such trees name files relative to the workdir, whatever the repository's root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from podctl.pods.worktree import GIT_LOCATION_VARS

GIT_TIMEOUT_S = 20.0


class GitError(RuntimeError):
    pass


async def _git(workdir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k not in GIT_LOCATION_VARS}
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=workdir, env={**base, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=GIT_TIMEOUT_S)
    except TimeoutError:
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


async def empty_tree(workdir: Path) -> str:
    """git's empty tree in this repository's hash (sha1 or sha256)."""
    return (await _git(workdir, "hash-object", "-t", "tree", "/dev/null")).strip()


async def _prefix_and_index(workdir: Path) -> tuple[str, Path]:
    """The workdir's path inside its repository ("" at the root, else "sub/dir/") and the real index file."""
    prefix, index = (await _git(workdir, "rev-parse", "--show-prefix", "--git-path", "index")).splitlines()
    return prefix, workdir / index


async def snapshot(workdir: Path) -> str:
    """A tree id for the workdir as it is now (tracked and untracked, minus ignored files), paths relative to it.

    The temporary index starts as a copy of the user's (mtime kept) so `git add` reuses its stat cache
    instead of hashing every file; the copy is only read from the original.
    """
    prefix, real_index = await _prefix_and_index(workdir)
    with tempfile.TemporaryDirectory(prefix="podctl-index-") as tmp:
        index = Path(tmp) / "index"
        if not real_index.is_file():
            return await _write_subtree(workdir, prefix, index)
        shutil.copy2(real_index, index)
        try:
            return await _write_subtree(workdir, prefix, index)
        except GitError:
            # The user's index may hold what cannot be written as a tree (unmerged paths mid-merge): start empty.
            index.unlink(missing_ok=True)
            return await _write_subtree(workdir, prefix, index)


async def _write_subtree(workdir: Path, prefix: str, index: Path) -> str:
    env = {"GIT_INDEX_FILE": str(index)}
    whole = ["-c", "core.splitIndex=false"]  # the temporary index is written whole, never next to the user's
    try:
        await _git(workdir, *whole, "add", "-A", "--", ".", env=env)
    except GitError:
        if await _ignored(workdir):
            return await empty_tree(workdir)
        raise
    write = [*whole, "write-tree"]
    if not prefix:
        return (await _git(workdir, *write, env=env)).strip()
    try:
        return (await _git(workdir, *write, f"--prefix={prefix}", env=env)).strip()
    except GitError:
        if await _git(workdir, "ls-files", "-z", "--cached", "--", ".", env=env):
            raise
        return await empty_tree(workdir)  # nothing (but ignored files) in the workdir: no subtree to write


async def _ignored(workdir: Path) -> bool:
    """Whether the workdir itself is ignored by its repository (so `git add .` refuses it)."""
    try:
        await _git(workdir, "check-ignore", "-q", "--", ".")
    except GitError:
        return False
    return True


async def base_tree(workdir: Path, commit: str = "HEAD") -> str:
    """The workdir's tree in `commit` (HEAD, or a worktree's starting commit), or git's empty tree
    (no commit yet, or the workdir is not in it)."""
    prefix, _ = await _prefix_and_index(workdir)
    try:
        # The prefix is "" or ends in "/": `HEAD:` is the root tree, `HEAD:sub/` only ever a tree.
        return (await _git(workdir, "rev-parse", "--verify", "--quiet", f"{commit}:{prefix}")).strip()
    except GitError:
        return await empty_tree(workdir)


@dataclass(frozen=True)
class Change:
    files: list[str]
    """Changed paths, relative to the workdir the trees were taken of."""
    diff: str


_DIFF = ("diff", "--no-color", "--no-ext-diff", "--no-relative", "--no-renames")


async def changes(workdir: Path, old_tree: str, new_tree: str, files: list[str] | None = None) -> Change:
    """The files that differ between two snapshots of `workdir` (only `files` if given) and their diff."""
    out = await _git(workdir, *_DIFF, "--name-only", "-z", old_tree, new_tree)
    names = [n for n in out.split("\0") if n]
    if files is not None:
        names = [n for n in names if n in files]
    if not names:
        return Change([], "")
    # Pathspecs are taken relative to the cwd inside the repository; the trees' paths start at their top.
    specs = [f":(top,literal){n}" for n in names]
    return Change(names, await _git(workdir, *_DIFF, old_tree, new_tree, "--", *specs))
