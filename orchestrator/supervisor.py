"""The pod's supervisor daemon (`python -m podctl.orchestrator.supervisor POD_FILE`, started by `podctl up`).

It keeps a running pod matching its file for as long as the pod is up, attached or not:
- hot reload: watches the pod file and the files it names (`script:` files, pod files it
  `extends`; atomic saves included) and reconciles on every change;
  an invalid file changes nothing and its errors go to the transcript; `podctl add/remove`
  wait for what it applied (`applied.json`), and SIGHUP asks for a reload at once;
- steps that waited for a busy agent are applied once it is idle;
- token usage: the agents' session files are followed and reported to the broker (usage_follow.py);
- an agent whose CLI exited is reported stopped (with the last lines of its screen), and
  restarted by its `restart` policy with exponential backoff; a dead broker is restarted, with
  backoff when it cannot start.

Its event loop never blocks: reloads and ticks (tmux, starting a broker, an adapter's slow
preparation) run one at a time in a worker thread, under the pod's apply lock. A save during a
slow apply is applied next (the last save wins), and SIGTERM ends the supervisor at once.
At most one supervisor runs per pod: it holds `supervisor.lock` for its whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import libtmux
from podctl.broker.locks import ALREADY_RUNNING_EXIT, FileLock, write_pid_file
from podctl.broker.paths import PodPaths
from podctl.pods import layout
from podctl.pods.errors import PodctlError
from podctl.pods.load import PodFileError, PodFileMissing, load_pod, load_pod_text, read_pod_text
from podctl.pods.spec import PodSpec

from . import plan, pod, processes, reconcile, tmux
from .usage_follow import UsageFollower

log = logging.getLogger("podctl.supervisor")

TICK_S = 1.0
DEBOUNCE_MS = 80
SESSION_GONE_S = 3.0

T = TypeVar("T")


@dataclass
class Backoff:
    failures: int = 0
    next_try: float = 0.0

    def delay(self) -> float:
        return min(60.0, float(2 ** max(0, self.failures - 1)))

    def due(self) -> bool:
        return time.monotonic() >= self.next_try

    def failed(self) -> float:
        self.failures += 1
        delay = self.delay()
        self.next_try = time.monotonic() + delay
        return delay


class Supervisor:
    def __init__(self, pod_file: Path, spec: PodSpec) -> None:
        self.pod_file = pod_file
        self.spec = spec
        self.paths = PodPaths.of(spec.name)
        self.backoff: dict[str, Backoff] = {}
        self.broker_backoff = Backoff()
        self.bridge_backoff = Backoff()
        self.bridge_started = 0.0
        self.broker_silent = False
        """Its process lives but it did not answer the last probe."""
        self.reported_dead: set[str] = set()
        self.waiting: set[str] = set()
        self.session_missing_since: float | None = None
        self.applied_digest: str | None = None
        recorded = pod.applied_record(self.paths).get("named")
        self.named: dict[Path, str] = (
            {Path(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else pod.named_digests(spec)
        )
        """The files the pod file names (scripts, pod files it extends), with their digests as applied."""
        self.stop = asyncio.Event()
        self.dirty = asyncio.Event()
        self.rewatch = asyncio.Event()

    # -- work done in the worker thread, under the apply lock ----------------------------------

    def reload(self) -> None:
        try:
            text = read_pod_text(self.pod_file)
        except PodFileMissing:
            self._not_followed(f"{self.pod_file} is gone")
            return
        except PodFileError as exc:
            self._not_followed(f"{self.pod_file.name} cannot be read; nothing applied:\n{exc}")
            return
        digest = pod.file_digest(text)
        if digest == self.applied_digest and not self.waiting and pod.named_digests(self.spec) == self.named:
            return
        with pod.applying(self.paths, "the supervisor (applying a saved pod file)"):
            try:
                spec = load_pod_text(text, self.pod_file)
            except PodFileError as exc:
                self._refused(digest, f"{self.pod_file.name} changed but is invalid; nothing applied:\n{exc}")
                return
            if spec.name != self.spec.name:
                self._refused(digest, f"the pod's name changed to {spec.name!r}: not applied (podctl down, then up)")
                return
            settings = plan.settings_changes(self.spec, spec)
            self.spec = spec
            named = pod.named_digests(spec)
            summary = self.reconcile(announce=True, settings=settings)
            pod.record_applied(self.paths, digest, True, summary, spec)
            self.applied_digest = digest
            moved = set(named) != set(self.named)
            self.named = named
            if moved:
                self.loop.call_soon_threadsafe(self.rewatch.set)

    def _refused(self, digest: str, message: str) -> None:
        """A save that is not applied: said in the transcript and recorded (status shows it)."""
        reconcile.report(self.paths, message, "error")
        pod.record_applied(self.paths, digest, False, message)
        self.applied_digest = digest

    def _not_followed(self, why: str) -> None:
        """The pod file is gone or unreadable: the pod runs on as last applied, and says so once."""
        message = (f"{why}: the pod runs on as it last applied it and follows the file again once it is saved"
                   f" (`podctl down {self.spec.name}` stops it)")
        if pod.applied_record(self.paths).get("summary") != message:
            reconcile.report(self.paths, message, "error")
            pod.record_applied(self.paths, "", False, message)
        self.applied_digest = None

    def reconcile(self, announce: bool, settings: list[str] | None = None) -> str:
        """Apply the spec; `settings` are what it changes that no step shows (said as applied: the
        broker took them when it was handed the spec)."""
        steps = reconcile.compute(self.spec, self.paths)
        outcome = reconcile.apply(self.spec, self.paths, steps)
        outcome.settings = list(settings or [])
        waiting = {s.describe() for s in outcome.waiting}
        summary = outcome.summary()
        if outcome.done or outcome.settings or (waiting - self.waiting):
            reconcile.report(self.paths, "reconciled the pod file:\n" + summary)
        elif announce:
            reconcile.report(self.paths, "pod file saved: nothing to change")
        self.waiting = waiting
        return summary

    def tick(self) -> None:
        srv = tmux.server()
        if not tmux.session_exists(srv, self.spec.name):
            now = time.monotonic()
            self.session_missing_since = self.session_missing_since or now
            if now - self.session_missing_since > SESSION_GONE_S:
                log.info("the tmux session of pod %s is gone; the supervisor stops", self.spec.name)
                self.stop_soon()
            return
        self.session_missing_since = None
        with pod.applying(self.paths, "the supervisor (repairing the pod)"):
            self._repair_broker()
            self._repair_bridge()
            if self.waiting:
                self.reconcile(announce=False)
            self._watch_agents(srv)

    def _repair_broker(self) -> None:
        """Start the broker again if its process is gone. One that lives but does not answer (busy)
        is left alone: it holds broker.lock, so a second could not start, and "not running" would
        be false (logged once while it lasts)."""
        pid = processes.broker_pid(self.paths)
        if pid is not None:
            self._broker_answers(pid, processes.broker_alive(self.paths))
            return
        if processes.broker_alive(self.paths) or not self.broker_backoff.due():
            return
        try:
            processes.start_broker(self.pod_file, self.paths)
            reconcile.sync(self.paths, self.spec)
        except PodctlError as exc:
            delay = self.broker_backoff.failed()
            log.error("%s", exc)
            if self.broker_backoff.failures in (1, 3) or delay >= 60:
                reconcile.report(self.paths, f"{exc}\nretrying in {delay:.0f}s", "error")
            return
        self.broker_backoff = Backoff()
        reconcile.report(self.paths, "the broker was not running: restarted it", "warning")

    def _repair_bridge(self) -> None:
        """Start the bridge to the other sites again if its process is gone (a pod across machines)."""
        if self.spec.bridge is None or self.paths.read_site() not in self.spec.sites():
            return
        if processes.bridge_pid(self.paths) is not None:
            if time.monotonic() - self.bridge_started > 30:
                self.bridge_backoff = Backoff()
            return
        if not self.bridge_backoff.due():
            return
        if processes.start_bridge(self.pod_file, self.paths):
            self.bridge_started = time.monotonic()
            self.bridge_backoff.failed()  # a bridge that dies at once is not started again at every tick
            where = f"{layout.LOGS}/{layout.BRIDGE_LOG}"
            reconcile.report(self.paths, f"the bridge to the other sites was not running: restarted it ({where})", "warning")

    def _broker_answers(self, pid: int, answers: bool) -> None:
        if answers and self.broker_silent:
            log.info("the broker (pid %d) answers again", pid)
        elif not answers and not self.broker_silent:
            log.warning("the broker (pid %d) runs but did not answer within 1s (busy?): it is left alone", pid)
        self.broker_silent = not answers

    def _watch_agents(self, srv: libtmux.Server) -> None:
        windows = tmux.windows(srv, self.spec.name)
        for name, agent in self.spec.local_agents(self.paths.read_site()).items():
            window = windows.get(name)
            if window is not None and not window.dead:
                self.reported_dead.discard(name)
                continue
            status = window.exit_status if window is not None else None
            if name not in self.reported_dead:
                self.reported_dead.add(name)
                reconcile.set_stopped(self.paths, name)
                how = f"exited (status {status})" if window is not None else "lost its window"
                screen = pod.save_exit_screen(self.paths, name) if window is not None else ""
                last = [line for line in screen.splitlines() if line.strip() and not line.startswith("Pane is dead")]
                tail = ("; its last lines:\n" + "\n".join(last[-4:])) if last else ""
                reconcile.report(self.paths, f"agent {name} {how}; it is stopped{tail}", "warning")
            wants = agent.restart == "always" or (agent.restart == "on-failure" and status != 0)
            if not wants:
                continue
            backoff = self.backoff.setdefault(name, Backoff())
            if not backoff.due():
                continue
            backoff.failed()
            reconcile.report(self.paths, f"restarting {name} (restart: {agent.restart}, attempt {backoff.failures})")
            reconcile.restart_agent(self.spec, self.paths, name)

    # -- the event loop ---------------------------------------------------------------------------

    def stop_soon(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)

    async def blocking(self, work: Callable[[], T]) -> T | None:
        """Run `work` in a daemon thread; return None at once if the supervisor is told to stop."""
        future: asyncio.Future[T] = self.loop.create_future()

        def done(result: T | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def target() -> None:
            try:
                result = work()
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                self.loop.call_soon_threadsafe(done, None, exc)
            else:
                self.loop.call_soon_threadsafe(done, result, None)

        threading.Thread(target=target, name="supervisor-work", daemon=True).start()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        waiting: set[asyncio.Future[Any]] = {future, stopping}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        return future.result() if future.done() else None

    async def watch(self) -> None:
        """Watch the pod file and the files it names (atomic saves included: their folders are
        watched); watched anew when a save changes which files those are."""
        from watchfiles import awatch

        lost = False
        while not self.stop.is_set():
            self.rewatch.clear()
            files = {self.pod_file, *self.named}
            folders = sorted({f.parent for f in files if f.parent.is_dir()})
            if not folders:  # the pod file's folder is gone: look again each tick, reload when it is back
                lost = True
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=TICK_S)
                continue
            if lost:
                lost = False
                self.dirty.set()
            round_over = asyncio.Event()
            relay = asyncio.ensure_future(self._first_of(self.stop, self.rewatch, then=round_over))
            try:
                async for _ in awatch(
                    *folders, debounce=DEBOUNCE_MS, step=20, stop_event=round_over, recursive=False,
                    watch_filter=_one_of(files),
                ):
                    self.dirty.set()
            finally:
                relay.cancel()

    @staticmethod
    async def _first_of(*events: asyncio.Event, then: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            then.set()

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self.watch())
        usage = asyncio.create_task(UsageFollower(self.paths, lambda: self.spec).run(self.stop))
        self.dirty.set()  # the pod file, or a file it names, may have changed since `up` applied them
        try:
            while not self.stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.dirty.wait(), timeout=TICK_S)
                if self.stop.is_set():
                    break
                if self.dirty.is_set():
                    self.dirty.clear()
                    work, what = self.reload, "reload"
                else:
                    work, what = self.tick, "tick"
                try:
                    await self.blocking(work)
                except PodctlError as exc:
                    log.error("%s failed: %s", what, exc)
                    reconcile.report(self.paths, f"{what} failed: {exc}", "error")
                except Exception:
                    log.exception("supervisor %s failed", what)
        finally:
            self.stop.set()
            for task in (watcher, usage):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=2.0)


def _one_of(files: set[Path]) -> Callable[[Any, str], bool]:
    """A watchfiles filter that lets through changes to these files only."""
    wanted = frozenset(files)
    return lambda _change, path: Path(path) in wanted


def run(pod_file: Path, name: str | None = None) -> int:
    """Supervise pod `name` (its name, in case its pod file cannot be read as it starts) following `pod_file`."""
    from podctl.broker.daemon import RepeatFilter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("podctl.usage").addFilter(RepeatFilter())  # a usage file that keeps failing: once per 10 s
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # a line per file event would drown the log
    pod_file = pod_file.resolve()
    applied = pod.applied_spec(PodPaths.of(name)) if name else None
    # What `up` applied, not the file as it is now: it may have been saved since, even invalid or as a FIFO
    # (the first reload applies it, or says why not).
    spec = applied if applied is not None and applied.source == pod_file else load_pod(pod_file)
    supervisor = Supervisor(pod_file, spec)
    supervisor.applied_digest = pod.applied_record(supervisor.paths).get("digest")
    lock = FileLock(supervisor.paths.supervisor_lock, f"the supervisor of pod {spec.name}")
    if not lock.try_acquire():
        print(f"a supervisor for pod {spec.name} is already running ({lock.holder()})", file=sys.stderr)
        return ALREADY_RUNNING_EXIT
    write_pid_file(supervisor.paths.supervisor_pid)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.stop.set)
        loop.add_signal_handler(signal.SIGHUP, supervisor.dirty.set)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # blocked since spawn: one held now arrives
        await supervisor.run()

    try:
        asyncio.run(main())
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
