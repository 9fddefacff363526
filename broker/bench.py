"""`podctl bench bus`: latency, throughput and memory of the message bus on this machine.

Runs a real broker (`podctl broker run`) on a temporary PODCTL_HOME and measures through the
real socket and, for the round trip and start-up, through real `podctl shim` processes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import wire
from .client import AsyncClient
from .paths import PodPaths

POD = "benchpod"
AGENTS = ["sink", "ping", *(f"w{i}" for i in range(8))]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peak_rss_mb(pid: int) -> float | None:
    """A process's peak resident memory (VmHWM) in MB; None when it is gone. Every bench reads it here."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _pids_matching(needle: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _json_of(result: Any) -> dict[str, Any]:
    """A tool result's JSON (the shim answers with one text block)."""
    import json

    parsed: dict[str, Any] = json.loads(result.content[0].text)
    return parsed


async def _latency(paths: PodPaths, rounds: int) -> dict[str, float]:
    sender = AsyncClient(paths.socket, "ping", paths.read_token("ping"))
    reader = AsyncClient(paths.socket, "sink", paths.read_token("sink"))
    samples = []
    await reader.call("read_messages")
    for n in range(rounds):
        start = time.perf_counter()
        sent = await sender.call("tell", to="sink", text=f"ping {n}")
        while True:
            got = await reader.call("read_messages")
            if any(m["id"] == sent["message_id"] for m in got["messages"]):
                break
        samples.append((time.perf_counter() - start) * 1000)
    await sender.close()
    await reader.close()
    return {"p50_ms": round(statistics.median(samples), 3), "p99_ms": round(_percentile(samples, 0.99), 3)}


async def _throughput(paths: PodPaths, per_client: int) -> dict[str, float]:
    clients = [AsyncClient(paths.socket, f"w{i}", paths.read_token(f"w{i}")) for i in range(8)]
    for c in clients:
        await c.call("hello")

    async def burst(client: AsyncClient) -> None:
        window = 16
        for base in range(0, per_client, window):
            await asyncio.gather(*(
                client.call("tell", to="sink", text=f"load {base + k}") for k in range(min(window, per_client - base))
            ))

    start = time.perf_counter()
    await asyncio.gather(*(burst(c) for c in clients))
    elapsed = time.perf_counter() - start
    for c in clients:
        await c.close()
    total = per_client * len(clients)
    return {"messages": total, "seconds": round(elapsed, 3), "messages_per_s": round(total / elapsed)}


async def _shim_figures(paths: PodPaths, rounds: int, starts: int) -> dict[str, Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    def params(agent: str) -> StdioServerParameters:
        return StdioServerParameters(
            command=sys.executable,
            args=["-m", "podctl.orchestrator.cli.main", "shim", "--pod", POD, "--agent", agent, "--state", str(paths.root)],
        )

    start_times = []
    for _ in range(starts):
        t0 = time.perf_counter()
        async with Client(params("w0"), read_timeout_seconds=60):
            start_times.append((time.perf_counter() - t0) * 1000)


    round_trips = []
    async with (
        Client(params("ping"), read_timeout_seconds=60) as asker,
        Client(params("w7"), read_timeout_seconds=60) as answerer,
    ):
        await answerer.call_tool("read_messages", {})
        for n in range(rounds):
            t0 = time.perf_counter()
            asked = _json_of(await asker.call_tool("ask", {"to": "w7", "text": f"q{n}"}))
            inbox = _json_of(await answerer.call_tool("read_messages", {}))
            ask_id = next(m["ask_id"] for m in inbox["messages"] if m["kind"] == "ask")
            await answerer.call_tool("post_reply", {"ask_id": ask_id, "text": f"a{n}"})
            waited = _json_of(await asker.call_tool("wait_for_reply", {"ask_id": asked["ask_id"], "timeout_ms": 10000}))
            assert waited["status"] == "replied", waited
            round_trips.append((time.perf_counter() - t0) * 1000)
        shim_pids = _pids_matching(f"shim --pod {POD} --agent ping")
        shim_rss = round(max((peak_rss_mb(p) or 0.0) for p in shim_pids), 1) if shim_pids else None
    return {
        "shim_initialize_ms": {"p50": round(statistics.median(start_times), 1), "max": round(max(start_times), 1)},
        "ask_reply_round_trip_ms": {
            "p50": round(statistics.median(round_trips), 2), "p99": round(_percentile(round_trips, 0.99), 2)
        },
        "shim_peak_rss_mb": shim_rss,
    }


def run_bus_bench(rounds: int = 1000, per_client: int = 1250, shim_rounds: int = 50, shim_starts: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        home = Path(tmp) / "home"
        pod_dir = Path(tmp) / POD
        pod_dir.mkdir()
        agents = "\n".join(f"  {a}: {{cli: script}}" for a in AGENTS)
        pod_file = pod_dir / "pod.yaml"
        pod_file.write_text(f"name: {POD}\nagents:\n{agents}\n")
        env = dict(os.environ, PODCTL_HOME=str(home))
        os.environ["PODCTL_HOME"] = str(home)
        broker = subprocess.Popen(
            [sys.executable, "-m", "podctl.orchestrator.cli.main", "broker", "run", str(pod_file)],
            env=env, stderr=subprocess.DEVNULL,
        )
        try:
            paths = PodPaths(POD, home / POD)
            deadline = time.monotonic() + 30
            while True:
                try:
                    with wire.Client(paths.socket, "user", paths.read_token("user"), timeout=1) as c:
                        c.call("hello")
                    break
                except (OSError, wire.BrokerError):
                    if time.monotonic() > deadline or broker.poll() is not None:
                        raise RuntimeError("the benchmark's broker did not start") from None
                    time.sleep(0.05)

            async def measure() -> dict[str, Any]:
                return {
                    "tell_to_read_latency": await _latency(paths, rounds),
                    "durable_throughput_8_clients": await _throughput(paths, per_client),
                    **await _shim_figures(paths, shim_rounds, shim_starts),
                }

            figures = asyncio.run(measure())
            rss = peak_rss_mb(broker.pid)
            figures["broker_peak_rss_mb"] = round(rss, 1) if rss is not None else None
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    figures["targets"] = {
        "tell_to_read_latency": "p50 <= 2 ms, p99 <= 10 ms",
        "durable_throughput_8_clients": ">= 5000 messages/s",
        "broker_peak_rss_mb": "<= 90 (it holds the pod's one copy of the MCP SDK; see bench footprint)",
        "shim_initialize_ms": "<= 150",
    }
    figures["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    return figures
