"""`podctl bench attention`: how soon a person sees that an agent needs them, and how soon their
answer lets it go on.

A real pod (`podctl up`, a private tmux server, a temporary PODCTL_HOME) of one script agent whose
script asks permission before each of its writes. Two figures, each next to its goal:
- `event_to_blocked_s`: from the CLI's permission event (its hook command started, as a CLI starts
  it, with the event on its stdin) to `status` saying the agent is blocked with that tool and detail;
- `approve_to_tool_running_s`: from `podctl approve`'s call to the tool running (the script's write
  step that the permission guards has written its file).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.broker.paths import USER, PodPaths
from podctl.hooks.adapter import AgentContext, get_adapter

from .processes import PODCTL

POD = "benchattn"
ROUNDS = 10
GOALS = {"event_to_blocked_s": "p50 < 1.0", "approve_to_tool_running_s": "p50 < 1.0"}


def _pod(rounds: int) -> str:
    steps = "".join(
        f"        - permission: {{tool: Bash, detail: 'touch out/{n}'}}\n        - write: {{path: out/{n}, text: x}}\n"
        for n in range(rounds)
    )
    return f"name: {POD}\nagents:\n  hooked: {{cli: script}}\n  w:\n    cli: script\n    script:\n      steps:\n{steps}"


def _wait(predicate: Any, timeout: float = 30.0) -> float:
    """Seconds until `predicate()` is true (polled every millisecond or so)."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("benchmark step timed out")
        time.sleep(0.001)
    return time.perf_counter() - start


def _blocked_on(client: wire.Client, agent: str, detail: str) -> bool:
    row = next(a for a in client.call("status")["agents"] if a["name"] == agent)
    return row["state"] == "blocked" and (row.get("blocked") or {}).get("detail") == detail


def _hook_argv(paths: PodPaths) -> list[str]:
    """Claude Code's PermissionRequest hook command, as its adapter writes it, for agent `hooked` (a
    script agent that plays no step: the benchmark is its CLI)."""
    ctx = AgentContext(pod=POD, agent="hooked", cli="claude", role="", workdir=paths.root, state_dir=paths.root,
                       agent_dir=paths.agent_dir("hooked"), token="", hold_s=30.0)
    return ctx.hook_command(get_adapter("claude").hook_events["PermissionRequest"])


def _event_to_blocked(client: wire.Client, paths: PodPaths, rounds: int) -> list[float]:
    took = []
    argv = _hook_argv(paths)
    for n in range(rounds):
        event = {"hook_event_name": "PermissionRequest", "tool_name": "Bash", "tool_input": {"command": f"ls {n}"}}
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(event).encode())
        proc.stdin.close()
        _wait(lambda n=n: _blocked_on(client, "hooked", f"ls {n}"))
        took.append(time.perf_counter() - start)
        client.call("deny", name="hooked", reason="benchmark")
        proc.wait(timeout=30)
    return took


def _approve_to_tool(client: wire.Client, work: Path, rounds: int) -> list[float]:
    took = []
    for n in range(rounds):
        _wait(lambda n=n: _blocked_on(client, "w", f"touch out/{n}"))
        start = time.perf_counter()
        client.call("approve", name="w")
        _wait(lambda n=n: (work / "out" / str(n)).exists())
        took.append(time.perf_counter() - start)
    return took


def _figures(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 4), "max": round(max(values), 4)}


def run_attention_bench(rounds: int = ROUNDS) -> dict[str, Any]:
    socket = f"podctl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="podctl-bench-") as tmp:
        env = dict(os.environ, PODCTL_HOME=str(Path(tmp) / "home"), PODCTL_TMUX_SOCKET=socket, HOME=tmp)
        env.pop("TMUX", None)
        work = Path(tmp) / POD
        work.mkdir()
        (work / "pod.yaml").write_text(_pod(rounds))
        saved = os.environ.get("PODCTL_HOME")
        os.environ["PODCTL_HOME"] = env["PODCTL_HOME"]
        try:
            subprocess.run([*PODCTL, "up", str(work / "pod.yaml"), "--no-attach"], env=env, check=True,
                           capture_output=True, timeout=120)
            paths = PodPaths.of(POD)
            with wire.Client(paths.socket, USER, paths.read_token(USER), timeout=10.0) as client:
                blocked = _event_to_blocked(client, paths, rounds)
                running = _approve_to_tool(client, work, rounds)
        finally:
            subprocess.run([*PODCTL, "down", POD], env=env, capture_output=True, timeout=60, check=False)
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10, check=False)
            if saved is None:
                os.environ.pop("PODCTL_HOME", None)
            else:
                os.environ["PODCTL_HOME"] = saved
    return {
        "event_to_blocked_s": _figures(blocked),
        "approve_to_tool_running_s": _figures(running),
        "rounds": rounds,
        "goals": GOALS,
    }
