"""`podctl bench usage`: how fast the supervisor's usage follower catches up and keeps up.

Against a real broker (a temporary PODCTL_HOME): a session file of 50,000 model requests read
from scratch (what a long-running agent's history costs once), a look at files that did not change
(what it costs every few seconds), and the lag from a CLI appending one request to the broker
counting it, with the follower running as in the supervisor (file events, debounced).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from podctl.broker.client import AsyncClient
from podctl.broker.paths import USER, PodPaths
from podctl.pods.load import load_pod
from podctl.pods.script import USAGE_FILE

from .processes import PODCTL
from .usage_follow import UsageFollower

POD = "benchusage"


def _line(n: int) -> str:
    return json.dumps({"type": "usage", "id": f"r{n}", "ts": time.time(), "model": "bench-model", "input": 1000 + n % 7,
                       "cached_input": 100, "output": 50, "reasoning": 5}) + "\n"


async def _requests(client: AsyncClient) -> int:
    rows = (await client.call("usage", since=0.0))["rows"]
    return sum(int(r["requests"]) for r in rows)


async def _measure(paths: PodPaths, pod_file: Path, history: int, appends: int) -> dict[str, Any]:
    spec = load_pod(pod_file)
    usage_file = paths.agent_dir("alice") / USAGE_FILE
    usage_file.write_text("".join(_line(n) for n in range(history)))
    client = AsyncClient(paths.socket, USER, paths.read_token(USER))
    follower = UsageFollower(paths, lambda: spec)
    try:
        start = time.perf_counter()
        await follower.scan()
        catch_up = time.perf_counter() - start
        assert await _requests(client) == history, "every request of the history counted once"
        idle = []
        for _ in range(20):
            start = time.perf_counter()
            await follower.scan()
            idle.append((time.perf_counter() - start) * 1000)
        stop = asyncio.Event()
        running = asyncio.create_task(UsageFollower(paths, lambda: spec).run(stop))
        await asyncio.sleep(0.5)  # the watcher is armed
        lags = []
        for n in range(history, history + appends):
            with usage_file.open("a") as fh:
                fh.write(_line(n))
            written = time.perf_counter()
            while await _requests(client) < n + 1:
                if time.perf_counter() - written > 30:
                    raise RuntimeError("an appended request was never counted")
                await asyncio.sleep(0.005)
            lags.append((time.perf_counter() - written) * 1000)
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    finally:
        await follower.close()
        await client.close()
    return {
        "catch_up": {"requests": history, "file_mb": round(usage_file.stat().st_size / 1e6, 1),
                     "seconds": round(catch_up, 2), "requests_per_s": round(history / catch_up)},
        "look_at_unchanged_files_ms": {"p50": round(statistics.median(idle), 2), "max": round(max(idle), 2)},
        "append_to_counted_ms": {"p50": round(statistics.median(lags), 1), "max": round(max(lags), 1)},
    }


def run_usage_bench(history: int = 50_000, appends: int = 20) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        home = Path(tmp) / "home"
        pod_file = Path(tmp) / POD / "pod.yaml"
        pod_file.parent.mkdir()
        pod_file.write_text(f"name: {POD}\nagents:\n  alice: {{cli: script}}\n")
        previous = os.environ.get("PODCTL_HOME")
        os.environ["PODCTL_HOME"] = str(home)
        broker = subprocess.Popen([*PODCTL, "broker", "run", str(pod_file)], stderr=subprocess.DEVNULL)
        try:
            paths = PodPaths.of(POD)
            deadline = time.monotonic() + 30
            while not (paths.socket.exists() and paths.token_file(USER).exists()):
                if time.monotonic() > deadline or broker.poll() is not None:
                    raise RuntimeError("the broker did not start")
                time.sleep(0.01)
            figures = asyncio.run(_measure(paths, pod_file, history, appends))
        finally:
            broker.terminate()
            broker.wait(timeout=10)
            if previous is None:
                os.environ.pop("PODCTL_HOME", None)
            else:
                os.environ["PODCTL_HOME"] = previous
    return {
        **figures,
        "targets": {"append_to_counted_ms": "p50 <= 1000 (the live view and budgets see spending within a second)",
                    "look_at_unchanged_files_ms": "p50 <= 20 (nothing is read again)"},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
