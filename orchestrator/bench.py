"""`podctl bench up`: how fast a pod comes up and how fast a saved pod file is applied.

Runs real `podctl up` on a private tmux server and a temporary PODCTL_HOME, with script agents.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.broker.paths import USER, PodPaths

from .processes import PODCTL

UP_OF_TEN_GOAL = "<= 2 (10 script agents, all idle with their tools up)"
POD = "name: benchup\nagents:\n  a1: {cli: script}\n  a2: {cli: script}\n  a3: {cli: script}\n"


def _windows(socket: str) -> dict[str, str]:
    out = subprocess.run(
        ["tmux", "-L", socket, "list-panes", "-s", "-t", "=benchup", "-F", "#{window_name} #{pane_dead}"],
        capture_output=True, text=True, timeout=10, check=False,
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _has_window(socket: str, name: str, wanted: bool) -> bool:
    return (name in _windows(socket)) == wanted


def _wait(predicate: Callable[[], object], timeout: float = 30.0, poll: float = 0.005) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("benchmark step timed out")
        time.sleep(poll)
    return time.perf_counter() - start


def _states(env: dict[str, str]) -> dict[str, str]:
    import json

    out = subprocess.run(
        [*PODCTL, "status", "benchup", "--json"], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    return {a["name"]: a["state"] for a in json.loads(out.stdout)["agents"]} if out.returncode == 0 else {}


def all_ready(home: Path, pod: str, agents: int) -> bool:
    """Every agent idle with its MCP tools up (what a wake needs). Asked over the socket from this
    process: a `podctl status` process per probe would take a core of this machine from the pod it
    measures."""
    paths = PodPaths.of(pod, root=home)
    try:
        with wire.Client(paths.socket, USER, paths.read_token(USER), timeout=5.0) as client:
            states = client.call("status")["agents"]
    except (OSError, wire.BrokerError):
        return False
    return len(states) == agents and all(a["state"] == "idle" and a.get("tools_ready") for a in states)


def _up_of_ten(tmp: Path, rounds: int) -> list[float]:
    """`podctl up` of 10 script agents until every one is ready, `rounds` times (down in between)."""
    socket = f"podctl-bench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PODCTL_HOME=str(tmp / "home10"), PODCTL_TMUX_SOCKET=socket)
    env.pop("TMUX", None)
    pod_file = tmp / "up10" / "pod.yaml"
    pod_file.parent.mkdir()
    pod_file.write_text("name: up10\nagents:\n" + "".join(f"  a{i}: {{cli: script}}\n" for i in range(10)))
    times = []
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            subprocess.run([*PODCTL, "up", str(pod_file), "--no-attach"], env=env, check=True, capture_output=True,
                           timeout=120)
            _wait(lambda: all_ready(tmp / "home10", "up10", 10), timeout=120, poll=0.02)
            times.append(time.perf_counter() - start)
            subprocess.run([*PODCTL, "down", "up10"], env=env, check=True, capture_output=True, timeout=60)
    finally:
        subprocess.run([*PODCTL, "down", "up10"], env=env, capture_output=True, timeout=60, check=False)
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)
    return times


def run_up_bench(rounds: int = 3, edits: int = 6) -> dict[str, Any]:
    socket = f"podctl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        env = dict(os.environ, PODCTL_HOME=str(Path(tmp) / "home"), PODCTL_TMUX_SOCKET=socket)
        env.pop("TMUX", None)
        pod_file = Path(tmp) / "benchup" / "pod.yaml"
        pod_file.parent.mkdir()
        pod_file.write_text(POD)
        windows_up, agents_idle, reload_applied = [], [], []
        try:
            for _ in range(rounds):
                start = time.perf_counter()
                subprocess.run([*PODCTL, "up", str(pod_file), "--no-attach"], env=env, check=True,
                               capture_output=True, timeout=60)
                _wait(lambda: all(_windows(socket).get(a) == "0" for a in ("a1", "a2", "a3")))
                windows_up.append(time.perf_counter() - start)
                _wait(lambda: set(_states(env).values()) == {"idle"})
                agents_idle.append(time.perf_counter() - start)
                subprocess.run([*PODCTL, "down", "benchup"], env=env, check=True, capture_output=True, timeout=60)
            subprocess.run([*PODCTL, "up", str(pod_file), "--no-attach"], env=env, check=True, capture_output=True, timeout=60)
            _wait(lambda: set(_states(env).values()) == {"idle"})
            for n in range(edits):
                added = n % 2 == 0
                text = POD + ("  a4: {cli: script}\n" if added else "")
                start = time.perf_counter()
                pod_file.write_text(text)
                _wait(functools.partial(_has_window, socket, "a4", added))
                reload_applied.append(time.perf_counter() - start)
        finally:
            subprocess.run([*PODCTL, "down", "benchup"], env=env, capture_output=True, timeout=60, check=False)
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)
        ten = _up_of_ten(Path(tmp), rounds)
    return {
        "up_of_10_script_agents_to_all_ready_s": {
            "p50": round(statistics.median(ten), 3), "runs": [round(t, 3) for t in ten], "goal": UP_OF_TEN_GOAL,
        },
        "up_to_windows_running_s": {"p50": round(statistics.median(windows_up), 3), "max": round(max(windows_up), 3)},
        "up_to_agents_idle_s": {"p50": round(statistics.median(agents_idle), 3), "max": round(max(agents_idle), 3)},
        "file_save_to_change_applied_s": {
            "p50": round(statistics.median(reload_applied), 3), "max": round(max(reload_applied), 3)
        },
        "targets": {
            "up_to_windows_running_s":
                "<= 2.5 (3 script agents; up watches the agents it started for up to 1.5 s, to report one that dies at once)",
            "file_save_to_change_applied_s": "p50 <= 1.0",
        },
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }
