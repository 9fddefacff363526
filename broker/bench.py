"""`podctl bench bus`: latency, throughput and memory of the message bus on this machine.

Runs a real broker (`podctl broker run`) on a temporary PODCTL_HOME and measures through the
real socket and, for the round trip and start-up, through real relays (`shim/fast.py`, as a
CLI starts it). Each figure is printed next to its floor (the same work without podctl, measured
in the same run) where it has one, and its goal. The machine is shared: each figure is taken
several times and given with its spread.

- durable tells/s: 8 clients, each on its own connection pipelining 16 tells, in a process of
  their own that speaks the raw wire (so the figure is the broker's, not a client library's);
  its floor is SQLite alone committing the store's own message rows (its schema, a tell's row)
  into a WAL file, in batches of 64 from one thread;
- tell -> read: a tell, then `read_messages` of its recipient until it is there (asyncio client);
- ask -> reply: ask, read_messages, post_reply, wait_for_reply, each a JSON-RPC line through the
  asker's or the answerer's relay (the CLI side's cost is not podctl's: a client that writes
  and reads lines); the same with the Python MCP SDK's client is given beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podctl.pods import layout

from . import wire
from .client import AsyncClient
from .paths import PodPaths

POD = "benchpod"
AGENTS = ["sink", "ping", *(f"w{i}" for i in range(8))]
RUNS = 3
"""How many times each throughput figure and its floor are taken (interleaved)."""
WINDOW = 16
"""Tells each of the 8 clients keeps in flight."""
FLOOR_BATCH = 64
GOALS = {
    "durable_tells_per_s": ">= 0.20 of the SQLite floor measured in the same run",
    "tell_to_read_ms": "p50 <= 1, p99 <= 5",
    "ask_reply_round_trip_ms": "p50 <= 5 (through two relays)",
    "broker_peak_rss_mb": "<= 90 (it holds the pod's one copy of the MCP SDK; see bench footprint)",
    "shim_initialize_ms": "<= 150",
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _spread(values: list[float], digits: int = 0) -> dict[str, Any]:
    """The median of several runs and every run, in order."""
    return {"median": round(statistics.median(values), digits), "runs": [round(v, digits) for v in values]}


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


def sqlite_floor(seconds: float = 1.0) -> float:
    """Rows/s SQLite alone commits into a WAL file (synchronous=NORMAL, as the store) from one thread,
    in batches of FLOOR_BATCH: rows of the store's `messages` table, with its schema and indexes,
    each a tell's row (built in the loop, as the broker builds them)."""
    from .store import MIGRATIONS

    with tempfile.TemporaryDirectory(prefix="podctl-floor-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for script in MIGRATIONS:
                conn.executescript(script)
            sql = ("INSERT OR IGNORE INTO messages(id, ts, sender, kind, recipients, target, text, ask_id, urgent,"
                   " followup, client_msg_id, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
            rows = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                batch = [
                    (rows + i + 1, time.time(), "w0", "tell", json.dumps(["sink"]), "sink", f"load {rows + i}", None,
                     0, 0, f"floor-{rows + i}", None)
                    for i in range(FLOOR_BATCH)
                ]
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
                rows += FLOOR_BATCH
            return rows / (time.perf_counter() - start)
        finally:
            conn.close()


@dataclass
class _LoadClient:
    sock: socket.socket
    agent: str
    token: str
    sent: int = 0
    got: int = 0
    buf: bytes = b""


def pipelined_load(state: str, per_client: int, window: int = WINDOW) -> dict[str, Any]:
    """8 agents' connections, each keeping `window` tells in flight on the raw wire (the process
    `podctl bench bus` runs it in: python -m podctl.broker.bench load STATE PER_CLIENT WINDOW)."""
    stamp = os.urandom(4).hex()
    selector = selectors.DefaultSelector()
    clients = []
    for i in range(8):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(layout.socket_of(state))
        client = _LoadClient(sock, f"w{i}", Path(f"{state}/agents/w{i}/token").read_text().strip())
        clients.append(client)
        selector.register(sock, selectors.EVENT_READ, client)

    def send(client: _LoadClient, count: int) -> None:
        first = client.sent
        client.sent += count
        client.sock.sendall(b"".join(wire.encode(wire.request(
            n, "tell", client.agent, client.token,
            {"to": "sink", "text": f"load {n}", "client_msg_id": f"{stamp}-{client.agent}-{n}"},
        )) for n in range(first, first + count)))

    failed = 0
    start = time.perf_counter()
    for client in clients:
        send(client, min(window, per_client))
    left = len(clients)
    while left:
        for key, _ in selector.select(timeout=60):
            client = key.data
            chunk = client.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the broker closed a benchmark connection")
            *lines, client.buf = (client.buf + chunk).split(b"\n")
            failed += sum(1 for line in lines if b'"ok":true' not in line)
            client.got += len(lines)
            more = min(client.got + window, per_client) - client.sent
            if more > 0:
                send(client, more)
            if client.got >= per_client:
                selector.unregister(client.sock)
                client.sock.close()
                left -= 1
    elapsed = time.perf_counter() - start
    return {"messages": per_client * len(clients), "seconds": elapsed, "failed": failed}


def _throughput(paths: PodPaths, per_client: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "podctl.broker.bench", "load", str(paths.root), str(per_client), str(WINDOW)],
        capture_output=True, text=True, timeout=600, check=True,
    )
    result = json.loads(out.stdout)
    if result["failed"]:
        raise RuntimeError(f"{result['failed']} tells of the benchmark failed")
    return float(result["messages"] / result["seconds"])


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
    return {"p50": round(statistics.median(samples), 3), "p99": round(_percentile(samples, 0.99), 3)}


RELAY = Path(__file__).resolve().parents[1] / "shim" / "fast.py"
"""The relay as a CLI starts it (hooks/adapter.py, `shim_command`)."""


def _relay_argv(paths: PodPaths, agent: str) -> list[str]:
    return [sys.executable, "-I", "-S", str(RELAY), "--pod", POD, "--agent", agent, "--state", str(paths.root)]


class _LineClient:
    """A CLI's side of an MCP session reduced to what it must do: write a JSON-RPC line, read one."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._next = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "0"}})
        self._write({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdout is not None
        self._next += 1
        self._write({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("a relay of the benchmark exited")
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") == self._next:
                return answer

    def tool(self, name: str, **args: Any) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            self.request("tools/call", {"name": name, "arguments": args})["result"]["content"][0]["text"]
        )
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _ask_reply_lines(paths: PodPaths, rounds: int) -> tuple[list[float], float | None]:
    """Round trips through two relays with line clients, and the asker's relay's peak RSS."""
    asker, answerer = _LineClient(_relay_argv(paths, "ping")), _LineClient(_relay_argv(paths, "w7"))
    try:
        answerer.tool("read_messages")
        samples = []
        for n in range(rounds):
            start = time.perf_counter()
            asked = asker.tool("ask", to="w7", text=f"q{n}")
            inbox = answerer.tool("read_messages")
            ask_id = next(m["ask_id"] for m in inbox["messages"] if m["kind"] == "ask")
            answerer.tool("post_reply", ask_id=ask_id, text=f"a{n}")
            waited = asker.tool("wait_for_reply", ask_id=asked["ask_id"], timeout_ms=10000)
            if waited["status"] != "replied":
                raise RuntimeError(f"the benchmark's ask was not answered: {waited}")
            samples.append((time.perf_counter() - start) * 1000)
        return samples, peak_rss_mb(asker.proc.pid)
    finally:
        asker.close()
        answerer.close()


async def _ask_reply_sdk(paths: PodPaths, rounds: int, starts: int) -> tuple[list[float], list[float]]:
    """The same round trips with the MCP SDK's client on both sides; and the relay's spawn -> initialize."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    def params(agent: str) -> StdioServerParameters:
        argv = _relay_argv(paths, agent)
        return StdioServerParameters(command=argv[0], args=argv[1:])

    def text(result: Any) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(result.content[0].text)
        return parsed

    start_times = []
    for _ in range(starts):
        t0 = time.perf_counter()
        async with Client(params("w0"), read_timeout_seconds=60):
            start_times.append((time.perf_counter() - t0) * 1000)
    samples = []
    async with (
        Client(params("ping"), read_timeout_seconds=60) as asker,
        Client(params("w7"), read_timeout_seconds=60) as answerer,
    ):
        await answerer.call_tool("read_messages", {})
        for n in range(rounds):
            t0 = time.perf_counter()
            asked = text(await asker.call_tool("ask", {"to": "w7", "text": f"q{n}"}))
            inbox = text(await answerer.call_tool("read_messages", {}))
            ask_id = next(m["ask_id"] for m in inbox["messages"] if m["kind"] == "ask")
            await answerer.call_tool("post_reply", {"ask_id": ask_id, "text": f"a{n}"})
            waited = text(await asker.call_tool("wait_for_reply", {"ask_id": asked["ask_id"], "timeout_ms": 10000}))
            if waited["status"] != "replied":
                raise RuntimeError(f"the benchmark's ask was not answered: {waited}")
            samples.append((time.perf_counter() - t0) * 1000)
    return samples, start_times


def _start_broker(tmp: str) -> tuple[subprocess.Popen[bytes], PodPaths]:
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
    paths = PodPaths(POD, home / POD)
    deadline = time.monotonic() + 30
    while True:
        try:
            with wire.Client(paths.socket, "user", paths.read_token("user"), timeout=1) as c:
                c.call("hello")
            return broker, paths
        except (OSError, wire.BrokerError):
            if time.monotonic() > deadline or broker.poll() is not None:
                broker.kill()
                raise RuntimeError("the benchmark's broker did not start") from None
            time.sleep(0.05)


def _round_trips(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 2), "p99": round(_percentile(samples, 0.99), 2)}


def run_bus_bench(rounds: int = 1000, per_client: int = 1250, shim_rounds: int = 100, shim_starts: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        broker, paths = _start_broker(tmp)
        try:
            latency = [asyncio.run(_latency(paths, rounds)) for _ in range(RUNS)]
            lines, relay_rss = _ask_reply_lines(paths, shim_rounds)
            sdk, starts = asyncio.run(_ask_reply_sdk(paths, shim_rounds, shim_starts))
            floors, rates = [], []  # last: the load leaves thousands of tells unread in sink's inbox
            _throughput(paths, 100)  # a first connection of each agent
            for _ in range(RUNS):
                floors.append(sqlite_floor())
                rates.append(_throughput(paths, per_client))
            rss = peak_rss_mb(broker.pid)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
    return {
        "durable_tells_per_s": {
            **_spread(rates), "sqlite_floor_rows_per_s": _spread(floors),
            "ratio_to_floor": round(statistics.median(rates) / statistics.median(floors), 3),
            "goal": GOALS["durable_tells_per_s"],
        },
        "tell_to_read_ms": {
            "p50": _spread([r["p50"] for r in latency], 3), "p99": _spread([r["p99"] for r in latency], 3),
            "goal": GOALS["tell_to_read_ms"],
        },
        "ask_reply_round_trip_ms": {
            **_round_trips(lines), "with_the_mcp_sdk_client": _round_trips(sdk),
            "goal": GOALS["ask_reply_round_trip_ms"],
        },
        "shim_initialize_ms": {"p50": round(statistics.median(starts), 1), "max": round(max(starts), 1),
                               "goal": GOALS["shim_initialize_ms"]},
        "shim_peak_rss_mb": round(relay_rss, 1) if relay_rss is not None else None,
        "broker_peak_rss_mb": {"value": round(rss, 1) if rss is not None else None, "goal": GOALS["broker_peak_rss_mb"]},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average": os.getloadavg()},
    }


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "load":
    print(json.dumps(pipelined_load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
