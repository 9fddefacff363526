"""The bridge of a pod across machines (docs/sites.md): `python -m podctl.orchestrator.bridge POD_FILE`,
one per pod per machine, started by `podctl up --site NAME` and restarted by the supervisor.

It is a client of two things: of this site's broker over its Unix socket, as the identity `podctl.bridge`
(its token in `bridge.token`; only the bridge operations take it), and of the pod's NATS server with this
machine's credentials. It carries only what crosses sites:

- out: what the broker hands it (`bridge_pull`) is published to JetStream with `Nats-Msg-Id` = origin site
  and id (JetStream drops a repeat within its window), and marked sent (`bridge_sent`) only once JetStream
  acknowledged it; a crash before that publishes it again, and the other site stores it once anyway;
- in: a durable pull consumer of this site's subjects, explicit acks: a message is acknowledged only once
  the broker committed it (`bridge_receive`), so a bridge, broker or NATS server that dies only delays it;
- states: each site's members as they are, on plain NATS (latest wins, every `HEARTBEAT_S` and on change).

Subjects are per site (`podctl.<pod>.<origin>.msg.<destination>`, `.rcpt.` for receipts,
`podctl.<pod>.<site>.state`), so NATS permissions can let a site publish only as itself; the broker checks
that an envelope's site is the subject's. At most one bridge runs per pod and machine: it holds
`bridge.lock` for its whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podctl.broker import wire
from podctl.broker.client import AsyncClient
from podctl.broker.locks import ALREADY_RUNNING_EXIT, FileLock, write_pid_file
from podctl.broker.paths import BRIDGE, PodPaths
from podctl.pods.errors import PodctlError
from podctl.pods.spec import PodSpec

from .nats_link import (
    BridgeError,
    bridge_url,
    connect_options,
    inbound_filter,
    message_subject,
    state_subject,
    stream_name,
    subject_site,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from podctl.broker.records import BridgeDue

log = logging.getLogger("podctl.bridge")

HEARTBEAT_S = 5.0
"""How often a site reports its members' states even when nothing changed (the others show its age)."""
PULL_WAIT_S = 5.0
FETCH_BATCH = 256
FETCH_WAIT_S = 5.0
ACK_WAIT_S = 30.0
"""JetStream delivers a message again if it is not acknowledged within this (the broker was down)."""
LATER_DELAY_S = 0.5
DUPLICATE_WINDOW_S = 600.0
"""JetStream drops a message whose `Nats-Msg-Id` it saw within this; the broker drops older repeats itself."""
PUBLISH_TIMEOUT_S = 10.0
BACKOFF_MAX_S = 5.0


@dataclass
class Link:
    """The state of the link to NATS, told to the broker when it changes."""

    up: bool = False
    detail: str = "connecting"
    told: tuple[bool, str] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Bridge:
    def __init__(self, spec: PodSpec, paths: PodPaths, site: str) -> None:
        if spec.bridge is None:
            raise BridgeError(f"pod {spec.name} has no `bridge:` in its pod file")
        self.spec = spec
        self.bridge = spec.bridge
        self.paths = paths
        self.site = site
        self.pod = spec.name
        self.broker = AsyncClient(paths.socket, BRIDGE, paths.read_token(BRIDGE))
        self.nc: Nats | None = None
        self.js: JetStreamContext | None = None
        self.link = Link()
        self.stop = asyncio.Event()
        self.snapshot: dict[str, Any] | None = None
        self.counts = {"published": 0, "received": 0, "duplicates": 0, "refused": 0}

    # -- the link to NATS ------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to NATS (again and again until it answers), and make sure the stream exists."""
        import nats

        options = connect_options(self.bridge, self.spec.base_dir())
        delay = 0.2
        while not self.stop.is_set():
            try:
                self.nc = await nats.connect(
                    name=f"podctl {self.pod} site {self.site}", connect_timeout=2, allow_reconnect=True,
                    max_reconnect_attempts=-1, reconnect_time_wait=0.5, ping_interval=5, max_outstanding_pings=2,
                    error_cb=self._on_error, disconnected_cb=self._on_disconnect, reconnected_cb=self._on_reconnect,
                    **options,
                )
                self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
                await self._ensure_stream()
                self._set_link(True, f"connected to {self.nc.connected_url.netloc if self.nc.connected_url else '?'}")
                return
            except BridgeError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure to reach NATS: said, then tried again
                self._set_link(False, f"cannot reach NATS at {options['servers'][0]}: {_why(exc)}")
                if self.nc is not None:
                    with contextlib.suppress(Exception):
                        await self.nc.close()
                    self.nc = None
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _ensure_stream(self) -> None:
        from nats.js import api
        from nats.js.errors import NotFoundError

        assert self.js is not None
        name = stream_name(self.pod)
        try:
            await self.js.stream_info(name)
            return
        except NotFoundError:
            pass
        config = api.StreamConfig(
            name=name, subjects=[message_subject(self.pod, "*", kind, "*") for kind in ("msg", "rcpt")],
            retention=api.RetentionPolicy.WORK_QUEUE, storage=api.StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
            description=f"podctl pod {self.pod}: messages and receipts between its sites",
        )
        try:
            await self.js.add_stream(config)
        except Exception:  # noqa: BLE001 - another site made it meanwhile (or this one may not): it must exist now
            await self.js.stream_info(name)

    async def _repair(self) -> None:
        """After a failure: a NATS server that lost its store (a new one) gets the stream again."""
        if self.js is not None and self.link.up:
            with contextlib.suppress(Exception):
                await self._ensure_stream()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS: %s", _why(exc))

    async def _on_disconnect(self) -> None:
        self._set_link(False, "disconnected from NATS; reconnecting")

    async def _on_reconnect(self) -> None:
        self._set_link(True, "reconnected to NATS")

    def _set_link(self, up: bool, detail: str) -> None:
        if (self.link.up, self.link.detail) != (up, detail):
            log.log(logging.INFO if up else logging.WARNING, f"link {'up' if up else 'down'}: {detail}")
        self.link.up, self.link.detail = up, detail
        self.link.changed.set()

    async def _tell_link(self) -> None:
        """Keep the broker told how the link is (status and the live view show it)."""
        while not self.stop.is_set():
            self.link.changed.clear()
            now = (self.link.up, self.link.detail)
            if now != self.link.told:
                try:
                    await self.broker.call("bridge_link", timeout=5.0, up=now[0], detail=now[1])
                    self.link.told = now
                except (wire.BrokerUnavailable, wire.BrokerError):
                    await self._sleep(0.5)
                    continue
            await self._wait(self.link.changed, HEARTBEAT_S)

    # -- out: the broker's outbox to JetStream ---------------------------------------------------------

    async def outbound(self) -> None:
        delay = 0.1
        next_report = 0.0
        while not self.stop.is_set():
            report = time.monotonic() >= next_report
            try:
                due = await self.broker.call(
                    "bridge_pull", timeout=PULL_WAIT_S + 10, report=report,
                    timeout_ms=max(0.0, min(PULL_WAIT_S, next_report - time.monotonic())) * 1000,
                )
            except (wire.BrokerUnavailable, wire.BrokerError) as exc:
                log.info("the broker is not answering (%s): waiting for it", exc)
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            ok = await self._publish_all(due)
            if due.get("state") is not None:
                self.snapshot = due["state"]
                if await self._publish_state():
                    next_report = time.monotonic() + HEARTBEAT_S
            if ok:
                delay = 0.1
            else:
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _publish_all(self, due: BridgeDue) -> bool:
        """Publish what is due; mark sent what JetStream acknowledged. False if some could not be published."""
        items = [("msg", i) for i in due.get("messages", [])] + [("rcpt", i) for i in due.get("receipts", [])]
        if not items:
            return True
        if self.js is None or not self.link.up:
            return False
        outcomes = await asyncio.gather(*(self._publish(kind, item) for kind, item in items), return_exceptions=True)
        sent_messages, sent_receipts, failed = [], [], []
        ok = True
        for (kind, item), outcome in zip(items, outcomes, strict=True):
            if outcome is True:
                if kind == "msg":
                    sent_messages.append({"id": item["id"], "site": item["site"]})
                else:
                    sent_receipts.append({"id": item["id"], "to": item["to"], "rank": item["rank"]})
            elif isinstance(outcome, TooLarge):
                failed.append({"id": item["id"], "site": item["site"], "why": str(outcome)})
            else:
                ok = False
                why = _why(outcome) if isinstance(outcome, BaseException) else str(outcome)
                log.warning("publishing to site %s failed: %s", item["site"], why)
        if not ok:
            await self._repair()
        if sent_messages or sent_receipts or failed:
            self.counts["published"] += len(sent_messages)
            try:
                await self.broker.call("bridge_sent", timeout=30.0, messages=sent_messages, receipts=sent_receipts,
                                       failed=failed)
            except (wire.BrokerUnavailable, wire.BrokerError) as exc:
                log.info("could not mark %d publishes sent (%s): they are published again, and stored once",
                         len(sent_messages) + len(sent_receipts), exc)
                return False
        return ok

    async def _publish(self, kind: str, item: dict[str, Any]) -> bool:
        assert self.js is not None and self.nc is not None
        payload = json.dumps(item["envelope"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(payload) + 512 > self.nc.max_payload:
            raise TooLarge(f"it is {len(payload)} bytes, over the NATS server's max_payload of {self.nc.max_payload}")
        await self.js.publish(
            message_subject(self.pod, self.site, kind, item["site"]), payload, timeout=PUBLISH_TIMEOUT_S,
            stream=stream_name(self.pod), headers={"Nats-Msg-Id": f"{self.pod}:{item['msg_id']}"},
        )
        return True

    async def _publish_state(self) -> bool:
        if self.nc is None or not self.link.up or self.snapshot is None:
            return False
        try:
            await self.nc.publish(state_subject(self.pod, self.site), json.dumps(self.snapshot).encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - a state is sent again at the next heartbeat
            log.debug("state not published: %s", _why(exc))
            return False
        return True

    # -- in: JetStream to the broker ------------------------------------------------------------------

    async def inbound(self) -> None:
        from nats.js import api

        delay = 0.1
        sub = None
        while not self.stop.is_set():
            try:
                if sub is None:
                    assert self.js is not None
                    sub = await self.js.pull_subscribe(
                        inbound_filter(self.pod, self.site), durable=f"site-{self.site}", stream=stream_name(self.pod),
                        config=api.ConsumerConfig(
                            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_deliver=-1,
                            max_ack_pending=FETCH_BATCH * 4, deliver_policy=api.DeliverPolicy.ALL,
                            description=f"podctl pod {self.pod}: what site {self.site} receives",
                        ),
                    )
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
            except TimeoutError:
                continue
            except Exception as exc:  # noqa: BLE001 - NATS away: wait, then subscribe and fetch again
                log.info("fetching from JetStream failed: %s", _why(exc))
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
                sub = None
                await self._sleep(delay)
                await self._repair()
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            delay = 0.1
            await self._take(msgs)

    async def _take(self, msgs: list[Msg]) -> None:
        """Commit a fetched batch through the broker (by origin site, in order), then acknowledge each."""
        runs: list[tuple[str, list[Msg]]] = []
        for msg in msgs:
            origin = subject_site(msg.subject)
            if runs and runs[-1][0] == origin:
                runs[-1][1].append(msg)
            else:
                runs.append((origin, [msg]))
        for origin, run in runs:
            envelopes: list[Any] = []
            for msg in run:
                try:
                    envelopes.append(json.loads(msg.data))
                except ValueError:
                    envelopes.append(None)  # refused by the broker as no envelope
            attempts = [int(getattr(msg.metadata, "num_delivered", 1) or 1) for msg in run]
            results = await self._receive(origin, envelopes, attempts, run)
            for msg, result in zip(run, results, strict=True):
                await self._settle(msg, result)

    async def _receive(self, origin: str, envelopes: list[Any], attempts: list[int], run: list[Msg]) -> list[dict[str, Any]]:
        """The broker's results for a run; while the broker is away, wait for it (telling JetStream the
        messages are in progress, so they are not delivered again meanwhile)."""
        delay = 0.1
        while True:
            try:
                got = await self.broker.call("bridge_receive", timeout=30.0, site=origin, envelopes=envelopes,
                                             attempts=attempts)
                return list(got["results"])
            except (wire.BrokerUnavailable, wire.BrokerError) as exc:
                log.info("the broker did not take %d messages from site %s (%s): trying again", len(run), origin, exc)
                if self.stop.is_set():
                    raise asyncio.CancelledError from None
                for msg in run:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def _settle(self, msg: Msg, result: dict[str, Any]) -> None:
        outcome = result.get("result")
        try:
            if outcome in ("stored", "duplicate"):
                await msg.ack()
                self.counts["received" if outcome == "stored" else "duplicates"] += 1
            elif outcome == "later":
                await msg.nak(delay=LATER_DELAY_S)
            else:
                self.counts["refused"] += 1
                log.warning("refused a message on %s: %s", msg.subject, result.get("why"))
                await msg.term()
        except Exception as exc:  # noqa: BLE001 - an ack that never arrives: JetStream delivers it again, stored once
            log.info("could not settle a message on %s: %s", msg.subject, _why(exc))

    # -- states ------------------------------------------------------------------------------------------

    async def states(self) -> None:
        """The other sites' state reports, handed to the broker (the newest wins)."""
        assert self.nc is not None
        queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=256)

        async def on_state(msg: Msg) -> None:
            if subject_site(msg.subject) != self.site:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(msg)

        await self.nc.subscribe(f"podctl.{self.pod}.*.state", cb=on_state)
        while not self.stop.is_set():
            msg = await queue.get()
            try:
                envelope = json.loads(msg.data)
                await self.broker.call("bridge_receive", timeout=10.0, site=subject_site(msg.subject), envelopes=[envelope])
            except (ValueError, wire.BrokerUnavailable, wire.BrokerError) as exc:
                log.debug("a state report was not taken: %s", exc)

    # -- the whole -------------------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._tell_link(), name="link")]
        try:
            await self.connect()
            if self.stop.is_set():
                return
            tasks += [asyncio.create_task(coro, name=name) for name, coro in (
                ("outbound", self.outbound()), ("inbound", self.inbound()), ("states", self.states()))]
            stopping = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping and not task.cancelled() and task.exception() is not None:
                    log.error("the bridge's %s loop failed: %r", task.get_name(), task.exception())
            stopping.cancel()
        finally:
            self.stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=5.0)
            if self.nc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.nc.close(), timeout=5.0)
            await self.broker.close()

    async def _sleep(self, seconds: float) -> None:
        await self._wait(self.stop, seconds)

    @staticmethod
    async def _wait(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=seconds)


class TooLarge(Exception):
    """An envelope over the NATS server's max_payload: it can never be published."""


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def run(pod_file: Path) -> int:
    """Run the pod's bridge in this process until SIGTERM; the exit status says how it ended."""
    from podctl.broker.daemon import setup_logging
    from podctl.pods.load import load_pod

    setup_logging()
    logging.getLogger("nats").setLevel(logging.CRITICAL)  # its reconnect tracebacks; the link state is logged
    try:
        import nats  # noqa: F401
    except ImportError:
        print("podctl bridge: the NATS client is not installed: pip install 'podctl[bridge]'", file=sys.stderr)
        return 1
    try:
        spec = load_pod(pod_file.resolve())
        paths = PodPaths.of(spec.name).ensure()
        site = paths.read_site()
        if site is None or site not in spec.sites():
            raise BridgeError(f"pod {spec.name} runs no site of its bridge here: `podctl up --site NAME` (sites:"
                              f" {', '.join(spec.sites()) or 'none'})")
        bridge = Bridge(spec, paths, site)
    except (PodctlError, OSError) as exc:
        print(f"podctl bridge: cannot start: {exc}", file=sys.stderr)
        return 1
    lock = FileLock(paths.bridge_lock, f"the bridge of pod {spec.name}")
    if not lock.try_acquire():
        print(f"podctl bridge: a bridge of pod {spec.name} is already running ({lock.holder()})", file=sys.stderr)
        return ALREADY_RUNNING_EXIT
    write_pid_file(paths.bridge_pid)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop.set)
        log.info("bridge of pod %s, site %s, to %s", spec.name, site, bridge_url(bridge.bridge))
        await bridge.run()

    code = 0
    try:
        asyncio.run(main())
    except BridgeError as exc:
        print(f"podctl bridge: {exc}", file=sys.stderr)
        code = 1
    finally:
        lock.release()
    return code


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
