"""The script agent is as light as the relay it speaks to: standard library only, no MCP SDK."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from podctl.broker.paths import PodPaths
from podctl.hooks.script import ADAPTER
from podctl.orchestrator.launch import agent_context
from podctl.pods.load import load_pod

from ..helpers import BrokerProcess, scaled, write_pod

POD = """\
name: light
agents:
  alice:
    cli: script
    script:
      steps:
        - tell: {to: bob, text: hello from a light agent}
  bob:
    cli: script
"""
PODCTL_ALLOWED = {
    "podctl", "podctl.pods", "podctl.pods.errors", "podctl.pods.script", "podctl.broker",
    "podctl.broker.transcript", "podctl.scriptagent", "podctl.scriptagent.agent",
}
HEAVY = ("mcp", "mcp_types", "pydantic", "anyio", "asyncio", "yaml", "typer", "aiosqlite")


def test_the_script_agent_plays_its_script_with_the_standard_library_only(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    broker = start_broker(write_pod(tmp_path / "light", POD))
    spec = load_pod(broker.pod_file)
    ctx = agent_context(spec, PodPaths(spec.name, broker.state), "alice")
    ADAPTER.prepare(ctx)
    launch = ADAPTER.launch(ctx)
    argv = [launch.argv[0], "-X", "importtime", *launch.argv[1:]]
    proc = subprocess.run(argv, input="", capture_output=True, text=True, cwd=launch.cwd, env=launch.env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "→ tell bob: hello from a light agent" in proc.stdout, proc.stdout
    assert "MCP tools: ask, check_replies, list_agents, post_reply, read_messages, tell, wait_for_reply" in proc.stdout
    with broker.client("bob") as bob:
        assert [m["text"] for m in bob.call("read_messages")["messages"]] == ["hello from a light agent"]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line} - {"package"}
    ours = {m for m in imported if m.startswith("podctl")}
    assert ours <= PODCTL_ALLOWED, f"the script agent imported {sorted(ours - PODCTL_ALLOWED)}"
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, f"the script agent imported {heavy}"


def test_a_script_file_is_read_when_the_agent_is_prepared(tmp_path: Path, podctl_home: Path) -> None:
    folder = tmp_path / "filed"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "a.yaml").write_text("replies: 'yes: {text}'\nsteps:\n  - say: from a file\n")
    pod_file = write_pod(folder, "name: filed\nagents:\n  a: {cli: script, script: scripts/a.yaml}\n")
    spec = load_pod(pod_file)
    ctx = agent_context(spec, PodPaths(spec.name, podctl_home / "filed"), "a")
    ADAPTER.prepare(ctx)
    config = json.loads(ADAPTER.config_file(ctx).read_text())
    assert config["script"] == {"replies": "yes: {text}", "steps": [{"say": "from a file"}]}


def test_a_fifo_as_the_script_file_is_refused_at_prepare_without_blocking_up(tmp_path: Path, podctl_home: Path) -> None:
    folder = tmp_path / "fifo"
    (folder / "scripts").mkdir(parents=True)
    fifo = folder / "scripts" / "a.yaml"
    fifo.write_text("steps:\n  - say: hello\n")
    pod_file = write_pod(folder, "name: fifo\nagents:\n  a: {cli: script, script: scripts/a.yaml}\n")
    spec = load_pod(pod_file)
    fifo.unlink()  # replaced after the pod file was checked, before the agent is prepared
    os.mkfifo(fifo)
    ctx = agent_context(spec, PodPaths(spec.name, podctl_home / "fifo"), "a")
    preparing = threading.Thread(target=ADAPTER.prepare, args=(ctx,), daemon=True)
    preparing.start()
    preparing.join(timeout=scaled(10))
    blocked = preparing.is_alive()
    if blocked:  # free the reader: a writer that opens and closes the FIFO gives it an end of file
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        preparing.join(timeout=scaled(10))
    assert not blocked, "preparing the agent blocked on the FIFO named as its script (so would `podctl up`)"
    config = json.loads(ADAPTER.config_file(ctx).read_text())
    assert "not a regular file" in config["script_error"], config
