"""`podctl bench bridge`: a pod across two sites on this machine, bridged over a real nats-server.

Starts a nats-server with JetStream on 127.0.0.1 (a free port, its store in a temporary folder) and, for
each of sites a and b, its own PODCTL_HOME with a broker (`podctl broker run --site`) and a bridge
(`podctl bridge run`), then measures through the brokers' sockets: an ask at site a answered by an agent
of site b (ask -> the reply in the asker's wait_for_reply), and durable messages per second from site a
committed at site b. Needs the podctl[bridge] extra.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.broker.client import AsyncClient
from podctl.broker.paths import USER, PodPaths

from .nats_link import nats_server_argv

POD = "benchspan"
WRITERS = [f"w{i}" for i in range(8)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (OSError, wire.BrokerError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the benchmark's {what} did not come up within {timeout:.0f}s")
        time.sleep(0.05)


class _Site:
    def __init__(self, tmp: Path, name: str, pod_file: Path) -> None:
        self.name = name
        self.home = tmp / f"home-{name}"
        self.env = {**os.environ, "PODCTL_HOME": str(self.home), "PODCTL_LOG_LEVEL": "WARNING"}
        self.env.pop("PODCTL_SITE", None)
        self.paths = PodPaths(POD, self.home / POD)
        self.pod_file = pod_file
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        podctl = [sys.executable, "-m", "podctl.orchestrator.cli.main"]
        self.home.mkdir(parents=True)
        log = open(self.home / "bench.log", "ab")  # noqa: SIM115 - handed to the children
        try:
            self.procs.append(subprocess.Popen([*podctl, "broker", "run", str(self.pod_file), "--site", self.name],
                                               env=self.env, stdout=log, stderr=subprocess.STDOUT))
            _wait(lambda: self.user().call("hello"), 30, f"broker of site {self.name}")
            self.procs.append(subprocess.Popen([*podctl, "bridge", "run", str(self.pod_file)],
                                               env=self.env, stdout=log, stderr=subprocess.STDOUT))
        finally:
            log.close()

    def user(self) -> wire.Client:
        return wire.Client(self.paths.socket, USER, self.paths.read_token(USER), timeout=5)

    def link_up(self) -> bool:
        with self.user() as client:
            return bool(client.call("status")["sites"]["link"]["up"])

    def client(self, agent: str) -> AsyncClient:
        return AsyncClient(self.paths.socket, agent, self.paths.read_token(agent))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


async def _round_trips(a: _Site, b: _Site, rounds: int) -> list[float]:
    asker, answerer = a.client("asker"), b.client("answerer")
    samples = []
    await answerer.call("read_messages")
    for n in range(rounds):
        start = time.perf_counter()
        asked = await asker.call("ask", to="answerer", text=f"q{n}")
        waiting = asyncio.create_task(asker.call("wait_for_reply", ask_id=asked["ask_id"], timeout_ms=30_000, timeout=40))
        while True:
            inbox = (await answerer.call("read_messages"))["messages"]
            ask = next((m for m in inbox if m["kind"] == "ask"), None)
            if ask is not None:
                break
            await asyncio.sleep(0.0005)
        await answerer.call("post_reply", ask_id=ask["id"], text=f"a{n}")
        replied = await waiting
        if replied["status"] != "replied":
            raise RuntimeError(f"ask {n} was not answered: {replied}")
        samples.append((time.perf_counter() - start) * 1000)
    await asker.close()
    await answerer.close()
    return samples


async def _throughput(a: _Site, b: _Site, per_writer: int) -> dict[str, Any]:
    clients = [a.client(w) for w in WRITERS]
    sink = b.client(USER)
    before = (await sink.call("status"))["last_message_id"] or 0

    async def burst(client: AsyncClient) -> None:
        window = 16
        for base in range(0, per_writer, window):
            await asyncio.gather(*(client.call("tell", to="sink", text=f"load {base + k}")
                                   for k in range(min(window, per_writer - base))))

    total = per_writer * len(WRITERS)
    start = time.perf_counter()
    await asyncio.gather(*(burst(c) for c in clients))
    acked = time.perf_counter() - start
    while ((await sink.call("status"))["last_message_id"] or 0) - before < total:
        await asyncio.sleep(0.005)
    arrived = time.perf_counter() - start
    for client in [*clients, sink]:
        await client.close()
    return {"messages": total, "acknowledged_at_a_s": round(acked, 3), "committed_at_b_s": round(arrived, 3),
            "messages_per_s": round(total / arrived)}


def run_bridge_bench(rounds: int = 200, per_writer: int = 250) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = _free_port()
        (tmp / "nats").mkdir()
        nats = subprocess.Popen(nats_server_argv(port, tmp / "nats"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pod_dir = tmp / POD
        pod_dir.mkdir()
        agents = "\n".join([f"  {w}: {{cli: script, site: a}}" for w in ["asker", *WRITERS]]
                           + [f"  {r}: {{cli: script, site: b}}" for r in ("answerer", "sink")])
        pod_file = pod_dir / "pod.yaml"
        pod_file.write_text(f'name: {POD}\nbridge: {{url: "nats://127.0.0.1:{port}"}}\nagents:\n{agents}\n')
        sites = [_Site(tmp, "a", pod_file), _Site(tmp, "b", pod_file)]
        try:
            for site in sites:
                site.start()
            _wait(lambda: all(s.link_up() for s in sites), 30, "bridges")

            async def measure() -> dict[str, Any]:
                await _round_trips(sites[0], sites[1], 10)  # warm up
                samples = await _round_trips(sites[0], sites[1], rounds)
                return {
                    "ask_reply_across_sites_ms": {"p50": round(statistics.median(samples), 2),
                                                  "p99": round(_percentile(samples, 0.99), 2)},
                    "durable_throughput_across_the_bridge": await _throughput(sites[0], sites[1], per_writer),
                }

            figures = asyncio.run(measure())
        finally:
            for site in sites:
                site.stop()
            nats.terminate()
            nats.wait(timeout=10)
    figures["ask_reply_across_sites_ms"]["goal"] = "p50 < 20 ms on loopback"
    figures["durable_throughput_across_the_bridge"]["goal"] = ">= 1000 messages/s committed at the other site"
    figures["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    return figures
