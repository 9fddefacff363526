"""The pod's background processes: the broker daemon and the supervisor daemon.

Each daemon holds its own lock for its whole life (so there is at most one of each per pod) and
records its pid with its start time; a pid is only ever signalled after that identity is checked,
so a stale pid file naming a reused pid never hits an unrelated process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from podctl.broker import wire
from podctl.broker.locks import ALREADY_RUNNING_EXIT, verified_pid, write_pid_file
from podctl.broker.paths import USER, PodPaths
from podctl.pods import layout
from podctl.pods.errors import PodctlError

from . import proctree

PODCTL = [sys.executable, "-m", "podctl.orchestrator.cli.main"]


class DaemonFailed(PodctlError):
    """A daemon of the pod could not start; the message carries its own reason."""


def broker_alive(paths: PodPaths, timeout: float = 1.0) -> bool:
    """The broker answers within `timeout` (a busy one may not: see `broker_running`)."""
    try:
        with wire.Client(paths.socket, USER, paths.read_token(USER), timeout=timeout) as client:
            client.call("hello")
        return True
    except (OSError, wire.BrokerError):
        return False


def broker_pid(paths: PodPaths) -> int | None:
    """The broker's pid while that very process lives (it holds broker.lock for its whole life)."""
    return verified_pid(paths.broker_pid)


def broker_running(paths: PodPaths) -> bool:
    """The broker's process lives, answering or busy: only one that is gone is started again."""
    return broker_pid(paths) is not None or broker_alive(paths, timeout=0.5)


def supervisor_pid(paths: PodPaths) -> int | None:
    return verified_pid(paths.supervisor_pid)


def bridge_pid(paths: PodPaths) -> int | None:
    """The bridge's pid while that very process lives (it holds bridge.lock for its whole life)."""
    return verified_pid(paths.bridge_pid)


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a detached daemon (own session, no terminal), appending its output to `log`.

    It starts with SIGHUP blocked (the mask of the spawning thread is inherited across exec): a daemon
    is recorded the moment it is spawned, and `podctl add` may tell it to reload with SIGHUP long before
    it has imported enough to handle one, when SIGHUP's default action would end it without a word.
    Blocked, the signal waits: the supervisor unblocks it once its handler is in place."""
    log.parent.mkdir(parents=True, exist_ok=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        with open(log, "ab") as out:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _log_since(log: Path, offset: int, lines: int = 6) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def start_broker(pod_file: Path, paths: PodPaths, timeout: float = 20.0) -> None:
    """Start the pod's broker and wait until it answers; raise DaemonFailed with its own reason.
    A broker whose process still lives (busy, not answering yet) is waited for, never doubled."""
    log = paths.log(layout.BROKER_LOG)
    running = broker_pid(paths)
    if running is not None:
        _wait_for_running_broker(paths, running, timeout)
        return
    offset = log.stat().st_size if log.exists() else 0
    proc = spawn([sys.executable, "-m", "podctl.orchestrator.broker_main", str(pod_file)], log)
    deadline = time.monotonic() + timeout
    while not broker_alive(paths, timeout=0.5):
        code = proc.poll()
        if code is not None and code != ALREADY_RUNNING_EXIT:
            reason = _log_since(log, offset) or f"it exited with status {code}"
            raise DaemonFailed(f"the broker of pod {paths.pod} could not start:\n{reason}\n(log: {log})")
        if time.monotonic() > deadline:
            holder = broker_pid(paths)
            if code == ALREADY_RUNNING_EXIT and holder is not None:
                raise DaemonFailed(
                    f"a broker of pod {paths.pod} (pid {holder}) holds its lock but does not answer:"
                    f" `podctl down {paths.pod}` stops it; see {log}"
                )
            proc.kill()
            raise DaemonFailed(f"the broker of pod {paths.pod} did not answer within {timeout:.0f}s; see {log}")
        time.sleep(0.02)


def _wait_for_running_broker(paths: PodPaths, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not broker_alive(paths, timeout=0.5):
        if broker_pid(paths) != pid:
            raise DaemonFailed(f"the broker of pod {paths.pod} (pid {pid}) exited; see {paths.log(layout.BROKER_LOG)}")
        if time.monotonic() > deadline:
            raise DaemonFailed(
                f"the broker of pod {paths.pod} (pid {pid}) runs but did not answer within {timeout:.0f}s (busy?):"
                f" it is left running; `podctl down {paths.pod}` stops it; see {paths.log(layout.BROKER_LOG)}"
            )
        time.sleep(0.05)


def start_supervisor(pod_file: Path, paths: PodPaths) -> None:
    """Start the supervisor unless one runs, and record it at once (so a `down` right after `up`
    finds it); it records itself too when it starts."""
    if supervisor_pid(paths) is not None:
        return
    proc = spawn([sys.executable, "-m", "podctl.orchestrator.supervisor", str(pod_file), paths.pod],
                 paths.log(layout.SUPERVISOR_LOG))
    write_pid_file(paths.supervisor_pid, proc.pid)


def start_bridge(pod_file: Path, paths: PodPaths) -> bool:
    """Start the pod's bridge to its other sites unless one runs (docs/sites.md); it records itself too,
    and says in logs/bridge.log how its link to NATS is. True if one was started."""
    if bridge_pid(paths) is not None:
        return False
    proc = spawn([sys.executable, "-m", "podctl.orchestrator.bridge", str(pod_file)], paths.log(layout.BRIDGE_LOG))
    write_pid_file(paths.bridge_pid, proc.pid)
    return True


def stop(pid: int | None, timeout: float = 10.0) -> bool:
    """SIGTERM a verified daemon pid, then SIGKILL if it is still there after `timeout`."""
    if pid is None:
        return False
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proctree.alive(pid):
            return True
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    return True
