"""A CLI added by another package, through the `podctl.adapters` entry points only: the example
adapter of docs/adapters.md (examples/adapter) is installed and used like a built-in one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import agent_state, podctl, wait_until, write_pod

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/adapter installed with pip into a folder of its own (put on PYTHONPATH)."""
    target = tmp_path_factory.mktemp("plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(REPO / "examples" / "adapter")],
        check=True, capture_output=True, timeout=300,
    )
    return target


def test_an_installed_adapter_is_accepted_everywhere(plugin_path: Path, tmp_path: Path, pods, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(plugin_path))
    pod_file = write_pod(tmp_path / "plug", "name: plug\nagents:\n  echoer: {cli: echo, role: repeats}\n")

    assert "ok (pod plug, 1 agent)" in podctl("validate", str(pod_file)).stdout
    schema = json.loads(podctl("schema").stdout)
    assert "echo" in schema["$defs"]["AgentSpec"]["properties"]["cli"]["enum"]
    assert "echo" in podctl("add", "--help").stdout
    doctor = {row["check"]: row for row in json.loads(podctl("doctor", "--json", check=False).stdout)}
    assert doctor["echo"]["ok"] is True, doctor["echo"]

    pods.up(pod_file)
    wait_until(lambda: agent_state("plug", "echoer") == "idle", timeout=40, message="the echo agent idle")
    answer = podctl("send", "plug", "--to", "echoer", "--ask", "hello there", "--wait", "30").stdout
    assert "reply from echoer: echo: hello there" in answer
    assert any(a["name"] == "echoer" and a["cli"] == "echo" for a in json.loads(podctl("status", "plug", "--json").stdout)["agents"])


def test_without_the_package_the_cli_is_unknown(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    pod_file = write_pod(tmp_path / "plug", "name: plug\nagents:\n  echoer: {cli: echo}\n")
    out = podctl("validate", str(pod_file), check=False)
    from podctl.pods import clis

    assert out.returncode == 1 and f"'echo' is not one of {', '.join(clis.names())}" in out.stdout
