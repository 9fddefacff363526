"""`podctl bench footprint`: what a pod costs in memory and start-up time on this machine.

Real pods of script agents (N = 2 and 10) on a private tmux server and a temporary PODCTL_HOME:
the peak RSS of every process, summed by kind (podctl's own: broker, supervisor, view (`podctl ui`),
shims; and the script agents, which stand in for the CLIs); the shim's spawn -> `initialize`
answered; and `podctl send`'s wall time. Each time is given next to a bare interpreter measured
in the same run, as a ratio.
"""

from __future__ import annotations

import json
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
from podctl.hooks.adapter import SHIM_DIR
from podctl.pods import layout

from .bench import UP_OF_TEN_GOAL, all_ready
from .processes import PODCTL

KINDS: dict[str, Callable[[str], bool]] = {
    "broker": lambda cmd: "podctl.orchestrator.broker_main" in cmd,
    "supervisor": lambda cmd: "podctl.orchestrator.supervisor" in cmd,
    "view": lambda cmd: " ui " in cmd or (" tail " in cmd and "--follow" in cmd),
    "shims": lambda cmd: "shim/fast.py" in cmd,
    "script_agents": lambda cmd: ("scriptagent/fast.py" in cmd or "podctl.scriptagent" in cmd)
    and not cmd.startswith("sh "),  # the agent, not the `sh -c` that records its exit status
}
OWN = ("broker", "supervisor", "view", "shims")
GOALS = {
    "send": "<= 1.5x python -c pass",
    "script_agent": "<= 15 each (standard library only, like the relay)",
    "up": UP_OF_TEN_GOAL,
}



def _processes(env: dict[str, str]) -> dict[str, list[int]]:
    """The pod's processes by kind (those started under this benchmark's PODCTL_HOME)."""
    home = env["PODCTL_HOME"]
    found: dict[str, list[int]] = {kind: [] for kind in KINDS}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"PODCTL_HOME={home}".encode() not in environ and home not in cmd:
            continue
        for kind, matches in KINDS.items():
            if matches(cmd):
                found[kind].append(int(entry.name))
                break
    return found


def _wait(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark step timed out")
        time.sleep(0.05)


def _pod_memory(tmp: Path, agents: int) -> dict[str, Any]:
    socket = f"podctl-bench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PODCTL_HOME=str(tmp / f"h{agents}"), PODCTL_TMUX_SOCKET=socket)
    env.pop("TMUX", None)
    pod = f"fp{agents}"
    pod_file = tmp / pod / "pod.yaml"
    pod_file.parent.mkdir()
    pod_file.write_text(f"name: {pod}\nagents:\n" + "".join(f"  a{i}: {{cli: script}}\n" for i in range(agents)))
    started = time.perf_counter()
    try:
        subprocess.run([*PODCTL, "up", str(pod_file), "--no-attach"], env=env, check=True, capture_output=True,
                       timeout=300)
        _wait(lambda: all_ready(Path(env["PODCTL_HOME"]), pod, agents))
        up_s = time.perf_counter() - started
        procs = _processes(env)
        rss = {kind: round(sum(_rss(p) for p in pids), 1) for kind, pids in procs.items()}
        agents_rss = [_rss(p) for p in procs["script_agents"]]
        figures: dict[str, Any] = {
            "processes": {kind: len(pids) for kind, pids in procs.items()},
            "peak_rss_mb": rss,
            "podctl_own_rss_mb": round(sum(rss[kind] for kind in OWN), 1),
            "script_agent_peak_rss_mb": {"max": round(max(agents_rss, default=0.0), 1), "goal": GOALS["script_agent"]},
            "up_to_all_agents_ready_s": {"value": round(up_s, 2), **({"goal": GOALS["up"]} if agents == 10 else {})},
        }
        if agents == 2:
            figures["send"] = _send_times(env, pod)
            figures["shim_initialize"] = _shim_times(env, pod)
        return figures
    finally:
        subprocess.run([*PODCTL, "down", pod], env=env, capture_output=True, timeout=60, check=False)
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)


def _timed(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=60, check=False)
    return (time.perf_counter() - start) * 1000


def _send_times(env: dict[str, str], pod: str, runs: int = 20) -> dict[str, float | str]:
    """`podctl send` against `python -c pass`, interleaved."""
    send, floor = [], []
    for n in range(runs):
        floor.append(_timed([sys.executable, "-c", "pass"], env))
        send.append(_timed([*PODCTL, "send", pod, "--to", "a0", f"bench {n}"], env))
    return {"p50_ms": round(statistics.median(send), 1), "python_c_pass_p50_ms": round(statistics.median(floor), 1),
            "ratio": round(statistics.median(send) / statistics.median(floor), 2), "goal": GOALS["send"]}


def _first_line(argv: list[str], env: dict[str, str], request: bytes) -> float:
    """Spawn, send one line, and time until the first line comes back."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(request)
    proc.stdin.flush()
    proc.stdout.readline()
    elapsed = (time.perf_counter() - start) * 1000
    proc.stdin.close()
    proc.wait(timeout=30)
    return elapsed


def _shim_times(env: dict[str, str], pod: str, runs: int = 20) -> dict[str, float]:
    """The shim's spawn -> `initialize` answered (through the broker), against a bare interpreter
    that echoes one line, interleaved; and the shim's peak RSS."""
    state = Path(env["PODCTL_HOME"]) / pod
    argv = [sys.executable, "-I", "-S", str(SHIM_DIR / "fast.py"), "--pod", pod, "--agent", "a1",
            "--socket", layout.socket_of(str(state)), "--token-file", layout.token_of(str(state), "a1")]
    echo = [sys.executable, "-I", "-S", "-c", "import sys; sys.stdout.write(sys.stdin.readline()); sys.stdout.flush()"]
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
    shim, floor = [], []
    for _ in range(runs):
        floor.append(_first_line(echo, env, request.encode() + b"\n"))
        shim.append(_first_line(argv, env, request.encode() + b"\n"))
    shims = _processes(env)["shims"]
    return {"p50_ms": round(statistics.median(shim), 1), "bare_echo_p50_ms": round(statistics.median(floor), 1),
            "ratio": round(statistics.median(shim) / statistics.median(floor), 2),
            "running_shim_peak_rss_mb": round(max((_rss(p) for p in shims), default=0.0), 1)}


def run_footprint_bench() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pfp-") as tmp:
        pods = {f"pod_of_{n}_script_agents": _pod_memory(Path(tmp), n) for n in (2, 10)}
    return {
        **pods,
        "targets": {
            "shim_initialize_p50_ms": "<= 150", "running_shim_peak_rss_mb": "<= 25",
            "send_ratio_to_python_c_pass": GOALS["send"], "podctl_own_rss_mb_10_agents": "<= 350",
            "script_agent_peak_rss_mb": GOALS["script_agent"], "up_to_all_agents_ready_s_10_agents": GOALS["up"],
        },
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_average": os.getloadavg()},
    }


def _rss(pid: int) -> float:
    return peak_rss_mb(pid) or 0.0
