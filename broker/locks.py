"""OS locks that make "one broker and one supervisor per pod" and "one applier at a time" true.

A lock is an `flock` on a file in the pod's folder, held by an open file descriptor for as long as
its holder lives: the kernel releases it when the process dies, even by `kill -9`, so a lock is
never stale (unlike a pid file). The holder writes who it is into the file, for the messages of
those who wait. Standard library only.

Process identity: a pid file written next to a lock records the pid and the process's start
time (from /proc), so a pid that the kernel reused for an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

ALREADY_RUNNING_EXIT = 3
"""Exit status of a daemon that found its lock held: another one runs, nothing is wrong."""


class LockBusy(OSError):
    """The lock is held by another process; `holder` says who, as the holder wrote it."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by {holder or 'another process'}")
        self.path = path
        self.holder = holder


class FileLock:
    """An exclusive lock on `path`; `acquire` with a timeout, or `try_acquire` once."""

    def __init__(self, path: Path, purpose: str) -> None:
        self.path = path
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.purpose}\n".encode(), 0)
        return True

    def acquire(self, timeout: float, on_wait: object = None) -> None:
        """Wait at most `timeout` seconds; `on_wait(holder)` is called once if the lock is busy."""
        deadline = time.monotonic() + timeout
        told = False
        while not self.try_acquire():
            if not told and callable(on_wait):
                on_wait(self.holder())
                told = True
            if time.monotonic() >= deadline:
                raise LockBusy(self.path, self.holder())
            time.sleep(0.05)

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if it
    is gone or a zombie (dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def write_pid_file(path: Path, pid: int | None = None) -> None:
    """Record a process (this one by default) with its start time, atomically."""
    pid = pid or os.getpid()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid} {start_time(pid) or ''}\n")
    os.replace(tmp, path)


def verified_pid(path: Path) -> int | None:
    """The pid in a pid file if that very process still runs (same pid and start time), else None."""
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    recorded = parts[1] if len(parts) > 1 else None
    actual = start_time(pid)
    if actual is None or recorded is None or recorded != actual:
        return None
    return pid
