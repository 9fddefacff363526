"""The script agent is as light as the relay it speaks to: standard library only, no MCP SDK."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from podctl.broker.paths import PodPaths
from podctl.hooks.script import ADAPTER
from podctl.orchestrator.launch import agent_context
from podctl.pods.load import load_pod

from ..helpers import BrokerProcess, write_pod

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
