"""`podctl bench ui`: how fast the live view paints and whether it keeps up.

`podctl ui` runs in an 80x24 pane of a private tmux server against a real broker (a temporary
PODCTL_HOME). First paint is from spawning it to its screen showing the pod live with every agent;
the burst is 1,000 tells sent as fast as the broker acknowledges them, and the lag from the last
acknowledgement to that message on screen. Peak RSS of the view process is reported too.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podctl.broker.bench import peak_rss_mb
from podctl.broker.client import AsyncClient
from podctl.pods import layout

from .processes import PODCTL

POD = "benchui"
AGENTS = ("alice", "bob", "carol")


def _wait(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Poll every 5 ms; returns the moment `predicate` held (perf_counter)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the live view never showed {what}")
        time.sleep(0.005)
    return time.perf_counter()



def _view_pid(home: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f" ui {POD}" in cmd and "tmux" not in cmd and f"PODCTL_HOME={home}".encode() in environ:
            return int(entry.name)
    return None


async def _burst(state: Path, count: int) -> tuple[int, float]:
    """Send `count` tells from alice to bob, 50 in flight; returns the last id and when it was acked."""
    client = AsyncClient(layout.socket_of(str(state)), "alice", Path(layout.token_of(str(state), "alice")).read_text().strip())
    try:
        last = 0
        for start in range(0, count, 50):
            answers = await asyncio.gather(*(
                client.call("tell", to="bob", text=f"burst message {n}") for n in range(start, min(start + 50, count))
            ))
            last = max(last, *(a["message_id"] for a in answers))
        return last, time.perf_counter()
    finally:
        await client.close()


def run_ui_bench(paints: int = 5, burst: int = 1000) -> dict[str, Any]:
    socket = f"podctl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        home = Path(tmp) / "home"
        pod_file = Path(tmp) / POD / "pod.yaml"
        pod_file.parent.mkdir()
        pod_file.write_text(f"name: {POD}\nagents:\n" + "".join(f"  {a}: {{cli: script}}\n" for a in AGENTS))
        env = dict(os.environ, PODCTL_HOME=str(home), PODCTL_TMUX_SOCKET=socket)
        env.pop("TMUX", None)
        broker = subprocess.Popen([*PODCTL, "broker", "run", str(pod_file)], env=env, stderr=subprocess.DEVNULL)
        state = home / POD
        tmux = ["tmux", "-L", socket]

        def screen(session: str) -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", f"={session}:"], capture_output=True, text=True,
                                  timeout=10, check=False).stdout

        def open_view(session: str) -> float:
            start = time.perf_counter()
            view = " ".join([*PODCTL, "ui", POD])
            subprocess.run([*tmux, "new-session", "-d", "-x", "80", "-y", "24", "-s", session, view], env=env, check=True,
                           timeout=10)
            painted = _wait(lambda: " live " in (text := screen(session)) and all(a in text for a in AGENTS), 30,
                            "the pod live")
            return painted - start

        try:
            _wait(lambda: Path(layout.token_of(str(state), "alice")).exists() and Path(layout.socket_of(str(state))).exists(), 30,
                  "a running broker")
            first_paint = []
            for n in range(paints):
                first_paint.append(open_view(f"paint{n}") * 1000)
                subprocess.run([*tmux, "kill-session", "-t", f"=paint{n}"], timeout=10, check=False)
            open_view("burst")
            started = time.perf_counter()
            last_id, acked = asyncio.run(_burst(state, burst))
            seen = _wait(lambda: f"#{last_id} " in screen("burst"), 60, f"message #{last_id}")
            pid = _view_pid(str(home))
            rss = _rss(pid) if pid else 0.0
        finally:
            subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10, check=False)
            broker.terminate()
            broker.wait(timeout=10)
    return {
        "first_paint_ms": {"p50": round(statistics.median(first_paint), 1), "max": round(max(first_paint), 1)},
        "burst": {
            "messages": burst,
            "sent_in_s": round(acked - started, 3),
            "last_acked_to_on_screen_ms": round((seen - acked) * 1000, 1),
        },
        "view_peak_rss_mb": round(rss, 1),
        "targets": {"first_paint_ms": "p50 <= 1000", "last_acked_to_on_screen_ms": "<= 1000 (it keeps up)"},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def _rss(pid: int) -> float:
    return peak_rss_mb(pid) or 0.0
