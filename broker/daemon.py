"""Run one pod's broker: `podctl broker run POD_FILE` (foreground; `podctl up` daemonizes it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from podctl.pods.load import load_pod

from . import wire
from .paths import PodPaths
from .server import Server
from .service import Broker
from .store import Store
from .wake import Waker

log = logging.getLogger("podctl.broker")


class AlreadyRunning(RuntimeError):
    pass


def _check_not_running(paths: PodPaths) -> None:
    if not paths.socket.exists():
        return
    try:
        token = paths.read_token("user")
        with wire.Client(paths.socket, "user", token, timeout=1.0) as client:
            info = client.call("hello")
    except (OSError, wire.BrokerError, FileNotFoundError):
        return
    raise AlreadyRunning(
        f"a broker for pod {paths.pod} is already running (pid {info.get('broker_pid')}) on {paths.socket}"
    )


def tmux_nudger(broker: Broker):
    """The wake hook: type the agent's CLI's fixed wake text into its tmux pane."""

    async def nudge(agent: str) -> str:
        try:
            from podctl.hooks.adapter import get_adapter
            from podctl.orchestrator.tmux_nudge import nudge as tmux_nudge
        except ImportError as exc:
            return f"skipped: nudging is unavailable ({exc})"
        member = broker.members[agent]
        text = get_adapter(member.cli).wake_text
        target = f"={broker.spec.name}:={agent}"
        return await tmux_nudge(target, text, os.environ.get("PODCTL_TMUX_SOCKET"))

    return nudge


async def serve(pod_file: Path, ready: asyncio.Event | None = None) -> None:
    pod_file = pod_file.resolve()
    spec = load_pod(pod_file)
    paths = PodPaths.of(spec.name).ensure()
    _check_not_running(paths)
    store = await Store.open(paths.db)
    broker = Broker(spec, pod_file, paths, store)
    broker.reload_spec = lambda: load_pod(pod_file)
    await broker.load()
    broker.waker = Waker(tmux_nudger(broker), broker.wakeable, broker.record_wake)
    server = Server(broker, paths.socket)
    await server.start()
    paths.broker_pid.write_text(f"{os.getpid()}\n")
    paths.pod_file_record.write_text(f"{pod_file}\n")
    log.info("broker for pod %s listening on %s (pid %d)", spec.name, paths.socket, os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    notices = asyncio.create_task(broker.notices_loop())
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("broker for pod %s stopping", spec.name)
        notices.cancel()
        await server.stop()
        await broker.rules.close()
        await broker.waker.close()
        await store.close()
        with contextlib.suppress(FileNotFoundError):
            paths.broker_pid.unlink()


def run(pod_file: Path) -> int:
    logging.basicConfig(
        level=os.environ.get("PODCTL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(pod_file))
    except AlreadyRunning as exc:
        print(f"podctl broker: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a clear message, not a traceback, for pod file errors
        from podctl.pods.load import PodFileError

        if isinstance(exc, PodFileError):
            print(str(exc), file=sys.stderr)
            return 1
        raise
    return 0
