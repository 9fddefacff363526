"""Fixtures shared by every test: a private PODCTL_HOME and a private tmux server.

No test may touch the user's home, their podctl state or their tmux server.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import BrokerProcess, podctl, write_pod


@pytest.fixture(autouse=True)
def podctl_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state root per test (short path: Unix socket paths are limited to ~107 bytes)."""
    home = Path(tmp_path_factory.mktemp("ph", numbered=True))
    monkeypatch.setenv("PODCTL_HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "xdg"))
    return home


@pytest.fixture(autouse=True)
def tmux_socket(monkeypatch: pytest.MonkeyPatch):
    """A private tmux server for this test, killed afterwards."""
    name = f"podctl-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PODCTL_TMUX_SOCKET", name)
    monkeypatch.delenv("TMUX", raising=False)
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, timeout=10)


TWO_AGENTS = """\
name: {name}
agents:
  alice:
    cli: script
    role: writes code
  bob:
    cli: script
    role: reviews code
  carol:
    cli: script
    role: tests code
"""


@pytest.fixture
def broker(tmp_path: Path, podctl_home: Path):
    """A real broker for a three-agent script pod named `bus`."""
    pod_file = write_pod(tmp_path / "bus", TWO_AGENTS.format(name="bus"))
    proc = BrokerProcess(pod_file=pod_file, pod="bus", home=podctl_home)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    """The folder with the pinned real CLIs (`claude`, `codex`, `gemini`), installed once."""
    from .clis.install import install_clis

    return install_clis()



class Pods:
    """Brings pods up with the real CLI and always takes them down again."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def up(self, pod_file: Path, *extra: str) -> str:
        from podctl.pods.load import load_pod

        self.names.add(load_pod(pod_file).name)
        return podctl("up", str(pod_file), "--no-attach", *extra).stdout

    def down_all(self) -> None:
        for name in self.names:
            podctl("down", name, check=False)


@pytest.fixture
def pods() -> Iterator[Pods]:
    handle = Pods()
    yield handle
    handle.down_all()
