"""Run one pod's broker: `podctl broker run POD_FILE` (foreground; `podctl up` daemonizes it).

At most one broker runs per pod: it holds `broker.lock` for its whole life, and a second one
exits at once with `ALREADY_RUNNING_EXIT`. A broker that cannot start (a bad pod file, a store it
cannot use, a socket path too long) says why on stderr (its log) and exits 1 within seconds,
leaving no thread or process behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from podctl.pods.errors import PodctlError
from podctl.pods.load import load_pod
from podctl.pods.spec import SOCKET_PATH_MAX, PodSpec

from .locks import ALREADY_RUNNING_EXIT, FileLock, write_pid_file
from .paths import PodPaths
from .ports import Ports
from .server import Server
from .service import Broker
from .slots import raise_fd_limit
from .store import Store
from .wake import WakePolicy

log = logging.getLogger("podctl.broker")


class AlreadyRunning(PodctlError):
    pass


class StartFailed(PodctlError):
    pass


def _check_socket_path(paths: PodPaths) -> None:
    size = len(os.fsencode(paths.socket))
    if size > SOCKET_PATH_MAX:
        raise StartFailed(
            f"the socket path {paths.socket} is {size} bytes, over the {SOCKET_PATH_MAX} a Unix socket allows:"
            " use a shorter pod name or a shorter PODCTL_HOME"
        )


async def serve(pod_file: Path, ports: Ports, ready: asyncio.Event | None = None) -> None:
    pod_file = pod_file.resolve()
    spec = load_pod(pod_file)
    paths = PodPaths.of(spec.name).ensure()
    _check_socket_path(paths)
    lock = FileLock(paths.broker_lock, f"the broker of pod {spec.name}")
    if not lock.try_acquire():
        raise AlreadyRunning(f"a broker of pod {spec.name} is already running ({lock.holder()})")
    try:
        write_pid_file(paths.broker_pid)
        raise_fd_limit()
        store = await Store.open(paths.db)
        try:
            await _serve(spec, pod_file, paths, store, ports=ports, ready=ready)
        finally:
            await store.close()
    finally:
        lock.release()


async def _serve(
    spec: PodSpec, pod_file: Path, paths: PodPaths, store: Store, *, ports: Ports, ready: asyncio.Event | None
) -> None:
    stop = asyncio.Event()
    broker = Broker(spec, pod_file, paths, store, ports, site=paths.read_site(), wake=WakePolicy())

    def lost(reason: str) -> None:
        log.error("%s", reason)
        stop.set()

    store.on_lost = lost
    await broker.load()
    server = Server(broker, paths.socket)
    await server.start()
    log.info("broker for pod %s listening on %s (pid %d)", spec.name, paths.socket, os.getpid())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notices = asyncio.create_task(broker.delivery.notices_loop())
    screens = asyncio.create_task(broker.attention.watch())
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("broker for pod %s stopping", spec.name)
        notices.cancel()
        screens.cancel()
        await server.stop()
        await broker.rules.close()
        await broker.close()
        await broker.attention.close()


class RepeatFilter(logging.Filter):
    """Let a repeated log line through once per `window_s`, then say how often it repeated.

    A client storm (thousands of refused connections, an accept loop out of file descriptors)
    must not fill the disk with one line. A line with a traceback repeats when the same exception
    comes from the same place, whatever its text says (asyncio names each task in it)."""

    def __init__(self, window_s: float = 10.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, _raised_where(record) or str(record.msg))
        now = time.monotonic()
        first, count = self._seen.get(key, (0.0, 0))
        if now - first >= self.window_s:
            if count:
                record.msg = f"{record.msg} [and {count} more like it in the last {self.window_s:.0f}s]"
            self._seen[key] = (now, 0)
            if len(self._seen) > 1000:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            return True
        self._seen[key] = (first, count + 1)
        return False


def _raised_where(record: logging.LogRecord) -> str | None:
    """For a line with a traceback: the exception's type and the line that raised it."""
    if not record.exc_info or record.exc_info[1] is None:
        return None
    exc, tb = record.exc_info[1], record.exc_info[2]
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"{type(exc).__qualname__} at {where}"


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("PODCTL_LOG_LEVEL", "INFO"))


def run(pod_file: Path, ports: Ports) -> int:
    """Run the broker in this process until SIGTERM; the exit status says how it ended."""
    setup_logging()
    code = 0
    try:
        asyncio.run(serve(pod_file, ports))
    except AlreadyRunning as exc:
        print(f"podctl broker: {exc}", file=sys.stderr)
        code = ALREADY_RUNNING_EXIT
    except (PodctlError, OSError) as exc:
        print(f"podctl broker: cannot start: {exc}", file=sys.stderr)
        code = 1
    sys.stderr.flush()
    if threading.active_count() > 1:
        # A library thread that outlives the loop must not keep a dead broker alive.
        os._exit(code)
    return code
