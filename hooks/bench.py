"""`podctl bench hooks`: hook latency per event against a bare interpreter, and wake latency.

Hooks run as the CLIs run them (`python -I -S hooks/fast.py ...`) against a real broker; the
floor is `python -I -S -c pass` measured in the same run. Wake latency is from the commit of an
urgent message to an idle agent to the moment the wake text shows in its tmux pane.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.pods import layout

from .adapter import HOOKS_DIR
from .script import ADAPTER

PODCTL = [sys.executable, "-m", "podctl.orchestrator.cli.main"]


def _timed(argv: list[str], runs: int, stdin: bytes = b"{}") -> list[float]:
    """Wall time of whole runs. The output is captured: then the end of a run is seen the moment
    its pipes close (with output sent to /dev/null, `subprocess` polls for the exit with growing
    pauses, which rounds every run up to about 7.5 or 15.5 ms)."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, input=stdin, capture_output=True, check=False, timeout=30)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2)}


def run_hooks_bench(runs: int = 60, wakes: int = 15) -> dict[str, Any]:
    socket = f"podctl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        home = Path(tmp) / "home"
        pod_file = Path(tmp) / "benchhooks" / "pod.yaml"
        pod_file.parent.mkdir()
        pod_file.write_text("name: benchhooks\nagents:\n  agent: {cli: script}\n  peer: {cli: script}\n")
        env = dict(os.environ, PODCTL_HOME=str(home), PODCTL_TMUX_SOCKET=socket)
        broker = subprocess.Popen([*PODCTL, "broker", "run", str(pod_file)], env=env, stderr=subprocess.DEVNULL)
        state = home / "benchhooks"
        try:
            deadline = time.monotonic() + 30
            while not Path(layout.socket_of(str(state))).exists() or not Path(layout.token_of(str(state), "peer")).exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the benchmark's broker did not start")
                time.sleep(0.02)
            commands = {
                event: [sys.executable, "-I", "-S", str(HOOKS_DIR / "fast.py"), "--state", str(state),
                        "--agent", "agent", *how.options()]
                for event, how in ADAPTER.hook_events.items()
            }
            floor: list[float] = []
            samples: dict[str, list[float]] = {event: [] for event in commands}
            for _ in range(runs):  # interleaved, so a busy moment weighs on the floor and the hooks alike
                floor += _timed([sys.executable, "-I", "-S", "-c", "pass"], 1)
                for event, argv in commands.items():
                    samples[event] += _timed(argv, 1)
            per_event = {event: _summary(values) for event, values in samples.items()}
            wake = _wake_latency(state, socket, env, wakes)
        finally:
            broker.terminate()
            broker.wait(timeout=10)
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)
    floor_p50 = statistics.median(floor)
    return {
        "floor_python_I_S_pass": _summary(floor),
        "hook_latency": per_event,
        "hook_p50_over_floor": {e: round(v["p50_ms"] / floor_p50, 2) for e, v in per_event.items()},
        "wake_commit_to_nudge_ms": wake,
        "targets": {"hook_p50_over_floor": "<= 1.3", "wake_commit_to_nudge_ms": "p50 <= 300"},
    }


def _wake_latency(state: Path, socket: str, env: dict[str, str], rounds: int) -> dict[str, float]:
    """Time from an urgent tell's commit to the wake text appearing in the idle agent's pane."""
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "benchhooks", "-n", "agent", "cat"],
                   check=True, env=env, timeout=10)

    def client(name: str) -> wire.Client:
        return wire.Client(layout.socket_of(str(state)), name, Path(layout.token_of(str(state), name)).read_text().strip())

    def pane() -> str:
        return subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-t", "=benchhooks:=agent"],
                              capture_output=True, text=True, timeout=10, check=False).stdout

    samples = []
    with client("agent") as agent, client("peer") as peer:
        agent.call("hello", shim=True)
        for n in range(rounds):
            agent.call("hook", event="turn_end", inject=False)
            seen = pane().count(ADAPTER.wake_text)
            start = time.perf_counter()
            peer.call("tell", to="agent", text=f"wake {n}", urgent=True)
            deadline = time.monotonic() + 10
            while pane().count(ADAPTER.wake_text) == seen:
                if time.monotonic() > deadline:
                    raise RuntimeError("the wake never reached the pane")
                time.sleep(0.005)
            samples.append((time.perf_counter() - start) * 1000)
            agent.call("hook", event="turn_start", inject=False)
            agent.call("read_messages")
    return _summary(samples)
