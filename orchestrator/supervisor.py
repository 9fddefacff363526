"""The pod's supervisor daemon (`podctl supervise POD_FILE`, started by `podctl up`).

It keeps a running pod matching its file for as long as the pod is up, attached or not:
- hot reload: watches the pod file (atomic saves included) and reconciles on every change;
  an invalid file changes nothing and its errors go to the transcript;
- steps that waited for a busy agent are applied once it is idle;
- an agent whose CLI exited is reported stopped, and restarted by its `restart` policy with
  exponential backoff; a dead broker is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from podctl.broker.paths import PodPaths
from podctl.pods.load import PodFileError, load_pod
from podctl.pods.spec import PodSpec

from . import processes, reconcile, tmux

log = logging.getLogger("podctl.supervisor")

TICK_S = 1.0
DEBOUNCE_MS = 80
SESSION_GONE_S = 3.0


@dataclass
class Backoff:
    failures: int = 0
    next_try: float = 0.0

    def delay(self) -> float:
        return min(60.0, 1.0 * 2 ** max(0, self.failures - 1))


class Supervisor:
    def __init__(self, pod_file: Path, spec: PodSpec) -> None:
        self.pod_file = pod_file
        self.spec = spec
        self.paths = PodPaths.of(spec.name)
        self.backoff: dict[str, Backoff] = {}
        self.reported_dead: set[str] = set()
        self.waiting: set[str] = set()
        self.session_missing_since: float | None = None
        self.stop = asyncio.Event()

    def reload(self) -> None:
        try:
            spec = load_pod(self.pod_file)
        except PodFileError as exc:
            reconcile.report(self.paths, f"{self.pod_file.name} changed but is invalid; nothing applied:\n{exc}", "error")
            return
        except FileNotFoundError:
            return
        if spec.name != self.spec.name:
            reconcile.report(
                self.paths, f"the pod's name changed to {spec.name!r}: not applied (podctl down, then up)", "error"
            )
            return
        self.spec = spec
        self.reconcile(announce=True)

    def reconcile(self, announce: bool) -> None:
        steps = reconcile.compute(self.spec, self.paths)
        outcome = reconcile.apply(self.spec, self.paths, steps)
        waiting = {s.describe() for s in outcome.waiting}
        if outcome.done or (waiting - self.waiting):
            reconcile.report(self.paths, "reconciled the pod file:\n" + outcome.summary())
        elif announce:
            reconcile.report(self.paths, "pod file saved: nothing to change")
        self.waiting = waiting

    def tick(self) -> None:
        srv = tmux.server()
        if not tmux.session_exists(srv, self.spec.name):
            now = time.monotonic()
            self.session_missing_since = self.session_missing_since or now
            if now - self.session_missing_since > SESSION_GONE_S:
                log.info("the tmux session of pod %s is gone; the supervisor stops", self.spec.name)
                self.stop.set()
            return
        self.session_missing_since = None
        if not processes.broker_alive(self.paths):
            processes.start_broker(self.pod_file, self.paths)
            reconcile.report(self.paths, "the broker was not running: restarted it", "warning")
        if self.waiting:
            self.reconcile(announce=False)
        windows = tmux.windows(srv, self.spec.name)
        for name, agent in self.spec.agents.items():
            window = windows.get(name)
            if window is not None and not window.dead:
                self.reported_dead.discard(name)
                continue
            status = window.exit_status if window is not None else None
            if name not in self.reported_dead:
                self.reported_dead.add(name)
                reconcile.set_stopped(self.paths, name)
                how = f"exited (status {status})" if window is not None else "lost its window"
                reconcile.report(self.paths, f"agent {name} {how}; it is stopped", "warning")
            wants = agent.restart == "always" or (agent.restart == "on-failure" and status != 0)
            if not wants:
                continue
            backoff = self.backoff.setdefault(name, Backoff())
            if time.monotonic() < backoff.next_try:
                continue
            backoff.failures += 1
            backoff.next_try = time.monotonic() + backoff.delay()
            reconcile.report(self.paths, f"restarting {name} (restart: {agent.restart}, attempt {backoff.failures})")
            reconcile.restart_agent(self.spec, self.paths, name)

    async def watch(self) -> None:
        from watchfiles import awatch

        target = self.pod_file.name
        async for _ in awatch(
            self.pod_file.parent, debounce=DEBOUNCE_MS, step=20, stop_event=self.stop,
            watch_filter=lambda _change, path: Path(path).name == target,
        ):
            try:
                self.reload()
            except Exception as exc:  # noqa: BLE001 - keep watching
                log.exception("reload failed")
                reconcile.report(self.paths, f"reload failed: {exc}", "error")

    async def run(self) -> None:
        watcher = asyncio.create_task(self.watch())
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - keep supervising
                    log.exception("supervisor tick failed")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=TICK_S)
        finally:
            self.stop.set()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(watcher, timeout=2.0)


def run(pod_file: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    pod_file = pod_file.resolve()
    spec = load_pod(pod_file)
    supervisor = Supervisor(pod_file, spec)
    pid_file = processes.supervisor_pid_file(supervisor.paths)
    if processes.read_pid(pid_file) not in (None, os.getpid()):
        print(f"a supervisor for pod {spec.name} is already running", file=sys.stderr)
        return 1
    pid_file.write_text(f"{os.getpid()}\n")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.stop.set)
        await supervisor.run()

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(FileNotFoundError):
            if processes.read_pid(pid_file) in (None, os.getpid()):
                pid_file.unlink()
    return 0
