"""Fixtures shared by every test: a private HOME (and XDG folders), a private PODCTL_HOME and a
private tmux server.

No test may touch the user's home, their podctl state or their tmux server: HOME points into a
folder of the test run from the start (so session fixtures, such as the npm install of the real
CLIs, write nothing there either), and into a folder of its own for each test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import TWO_AGENTS, BrokerProcess, LocalBroker, podctl, write_pod

HOME_VARS = {"HOME": "", "XDG_CONFIG_HOME": ".config", "XDG_CACHE_HOME": ".cache", "XDG_DATA_HOME": ".local/share"}
"""Where a CLI (or podctl, or a tool a test runs) would write in a user's home. XDG_STATE_HOME is
PODCTL_HOME's (the `podctl_home` fixture)."""
SESSION_HOME = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """HOME and the XDG folders point into a throwaway folder for the whole run; the user's home
    stays readable as PODCTL_TEST_USER_HOME (tests/clis/install.py reads its .npmrc, never writes)."""
    os.environ.setdefault("PODCTL_TEST_USER_HOME", os.environ.get("HOME", ""))
    folder = config.stash[SESSION_HOME] = Path(tempfile.mkdtemp(prefix="podctl-test-home-"))
    for name, sub in HOME_VARS.items():
        os.environ[name] = str(folder / sub)


def pytest_unconfigure(config: pytest.Config) -> None:
    if SESSION_HOME in config.stash:
        shutil.rmtree(config.stash[SESSION_HOME], ignore_errors=True)


@pytest.fixture(autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME (and XDG folders) per test: whatever a CLI or a tool writes there is the test's."""
    folder = Path(tmp_path_factory.mktemp("home", numbered=True))
    for name, sub in HOME_VARS.items():
        monkeypatch.setenv(name, str(folder / sub))
    return folder


@pytest.fixture(autouse=True)
def podctl_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state root per test (short path: Unix socket paths are limited to ~107 bytes)."""
    home = Path(tmp_path_factory.mktemp("ph", numbered=True))
    monkeypatch.setenv("PODCTL_HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "xdg"))
    return home


@pytest.fixture(autouse=True)
def tmux_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private tmux server for this test, killed afterwards."""
    name = f"podctl-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PODCTL_TMUX_SOCKET", name)
    monkeypatch.delenv("TMUX", raising=False)
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def start_broker(podctl_home: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """Start real brokers (`start_broker(pod_file, nofile=...)`); every one is stopped afterwards."""
    started: list[BrokerProcess] = []

    def start(pod_file: Path, **options: Any) -> BrokerProcess:
        from podctl.pods.load import load_pod

        proc = BrokerProcess(pod_file=pod_file, pod=load_pod(pod_file).name, home=podctl_home, **options)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def local_broker(tmp_path: Path, podctl_home: Path) -> Iterator[LocalBroker]:
    """The `broker` fixture's pod, handled in this process (no socket, no subprocess)."""
    handle = LocalBroker(write_pod(tmp_path / "bus", TWO_AGENTS.format(name="bus")))
    yield handle
    handle.close()


@pytest.fixture
def broker(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    """A real broker for a three-agent script pod named `bus`."""
    return start_broker(write_pod(tmp_path / "bus", TWO_AGENTS.format(name="bus")))


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
        import yaml

        self.names.add(yaml.safe_load(pod_file.read_text())["name"])
        return podctl("up", str(pod_file), "--no-attach", *extra).stdout

    def down_all(self) -> None:
        for name in self.names:
            podctl("down", name, check=False)


@pytest.fixture
def pods() -> Iterator[Pods]:
    handle = Pods()
    yield handle
    handle.down_all()
