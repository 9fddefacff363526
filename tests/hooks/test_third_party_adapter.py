"""A CLI added by another package, through the `podctl.adapters` entry points only: the example
adapter of docs/adapters.md (examples/adapter) is installed and used like a built-in one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import Pods
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


def test_an_installed_adapter_is_accepted_everywhere(plugin_path: Path, tmp_path: Path, pods: Pods, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_without_the_package_the_cli_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    pod_file = write_pod(tmp_path / "plug", "name: plug\nagents:\n  echoer: {cli: echo}\n")
    out = podctl("validate", str(pod_file), check=False)
    from podctl.pods import clis

    assert out.returncode == 1 and f"'echo' is not one of {', '.join(clis.names())}" in out.stdout


def test_an_adapter_types_against_the_types_podctl_ships(tmp_path: Path) -> None:
    """podctl ships py.typed: mypy checks the example adapter against `Adapter` as installed, and
    refuses one whose optional member has the wrong type or that lacks a required one."""
    source, site = tmp_path / "source", tmp_path / "site"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".*", "build", "tests", "examples", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=300)
    good = (REPO / "examples" / "adapter" / "podctl_echo.py").read_text()
    bad = good.replace('    wake_text = "podctl: new messages"\n', '    wake_clear_keys = "C-u"\n')
    assert bad != good
    (tmp_path / "good.py").write_text(good)
    (tmp_path / "bad.py").write_text(bad)

    def mypy(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), name],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True, timeout=300,
        )

    checked = mypy("good.py")
    assert checked.returncode == 0, checked.stdout
    refused = mypy("bad.py")
    assert "missing library stubs or py.typed" not in refused.stdout, refused.stdout
    assert 'base class "Adapter" defined the type as "tuple[str, ...]"' in refused.stdout, refused.stdout
    assert 'Cannot instantiate abstract class "EchoAdapter" with abstract attribute "wake_text"' in refused.stdout


def test_a_registered_object_that_is_no_adapter_is_refused_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point whose object does not inherit `Adapter` is named as such (doctor's row, up), not
    a traceback of a missing attribute."""
    plugin = tmp_path / "plugin"
    info = plugin / "podctl_plain-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: podctl-plain\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[podctl.adapters]\nplain = podctl_plain:ADAPTER\n")
    (plugin / "podctl_plain.py").write_text(
        "import sys\n\nclass Plain:\n    name = 'plain'\n    takes_script = False\n    executable = sys.executable\n\n"
        "ADAPTER = Plain()\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(plugin))
    doctor = {row["check"]: row for row in json.loads(podctl("doctor", "--json", check=False).stdout)}
    assert doctor["plain"]["level"] == "fail", doctor["plain"]
    assert "must inherit Adapter" in doctor["plain"]["detail"], doctor["plain"]
    pod_file = write_pod(tmp_path / "pl", "name: pl\nagents:\n  a: {cli: plain}\n")
    up = podctl("up", str(pod_file), "--no-attach", check=False)
    assert up.returncode == 1 and "must inherit Adapter" in up.stderr and "Traceback" not in up.stderr, up.stderr
