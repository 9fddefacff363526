"""The pod's background processes: the broker daemon and the supervisor daemon (pid files, logs)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from podctl.broker import wire
from podctl.broker.paths import USER, PodPaths

PODCTL = [sys.executable, "-m", "podctl.orchestrator.cli.main"]


def supervisor_pid_file(paths: PodPaths) -> Path:
    return paths.root / "supervisor.pid"


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def broker_alive(paths: PodPaths, timeout: float = 1.0) -> bool:
    try:
        with wire.Client(paths.socket, USER, paths.read_token(USER), timeout=timeout) as client:
            client.call("hello")
        return True
    except (OSError, wire.BrokerError):
        return False


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a detached daemon (own session, no terminal), appending its output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True,
        )


def start_broker(pod_file: Path, paths: PodPaths, timeout: float = 20.0) -> None:
    proc = spawn([*PODCTL, "broker", "run", str(pod_file)], paths.logs / "broker.log")
    deadline = time.monotonic() + timeout
    while not broker_alive(paths, timeout=0.5):
        if proc.poll() is not None:
            tail = (paths.logs / "broker.log").read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"the broker of pod {paths.pod} exited at start:\n" + "\n".join(tail))
        if time.monotonic() > deadline:
            raise RuntimeError(f"the broker of pod {paths.pod} did not answer within {timeout:.0f}s; see {paths.logs}/broker.log")
        time.sleep(0.02)


def start_supervisor(pod_file: Path, paths: PodPaths) -> None:
    if read_pid(supervisor_pid_file(paths)) is None:
        spawn([*PODCTL, "supervise", str(pod_file)], paths.logs / "supervisor.log")


def stop_pid(path: Path, timeout: float = 10.0) -> bool:
    pid = read_pid(path)
    if pid is None:
        return False
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.02)
    else:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True
