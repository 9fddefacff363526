"""The environment every real-CLI test runs in: the pinned CLIs first on PATH, a throwaway HOME
(nothing may touch the user's own CLI config), no proxy and no inherited keys; and, after the test,
the check that its agents wrote nothing in that HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..conftest import Pods

INHERITED = (
    "OPENAI_API_KEY", "CODEX_HOME", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_CLI_HOME", "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy",
    "OPENAI_BASE_URL", "OPENAI_MODEL", "QWEN_HOME", "COPILOT_HOME", "COPILOT_MODEL", "COPILOT_GITHUB_TOKEN", "GH_TOKEN",
    "GITHUB_TOKEN", "COPILOT_PROVIDER_BASE_URL", "COPILOT_PROVIDER_API_KEY", "COPILOT_OFFLINE", "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CLINE_DIR", "CLINE_DATA_DIR", "BASH_ENV", "npm_config_cache",
)
"""Taken out of the test's environment: a user's keys and homes, and the folders a CLI writes to,
which then default to the throwaway HOME (where the check below looks)."""


@dataclass
class CliHome:
    """The throwaway HOME of a real-CLI test (and the `$XDG_STATE_HOME` the root conftest points into
    PODCTL_HOME, outside any agent's folder). What the test puts there as the user's own setup
    (`users_own`) is allowed; anything else found there after its pods are down fails the test."""

    path: Path
    state: Path
    own: dict[str, tuple[int, int]] = field(default_factory=dict)

    def listing(self) -> dict[str, tuple[int, int]]:
        """Every file, folder and symlink, with its size and modification time (0, 0 for a folder)."""
        found = {}
        for label, root in (("~", self.path), ("$XDG_STATE_HOME", self.state)):
            for entry in root.rglob("*"):
                info = entry.lstat()
                found[f"{label}/{entry.relative_to(root)}"] = (0, 0) if entry.is_dir() else (info.st_size, info.st_mtime_ns)
        return found

    def users_own(self) -> None:
        """What is there now is the user's own setup, which the test made as a user would."""
        self.own = self.listing()

    def written(self) -> list[str]:
        """What the agents wrote: entries the user's setup did not have, or changed."""
        return sorted(name for name, stamp in self.listing().items() if self.own.get(name) != stamp)


@pytest.fixture
def cli_env(cli_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pods: Pods, podctl_home: Path) -> Iterator[CliHome]:
    """A throwaway HOME; once the test is over and its pods are down, nothing may be in it that the
    test did not put there (docs/adapters.md, "Writes outside the agent's folder")."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{cli_bin}:{os.environ['PATH']}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in INHERITED:
        monkeypatch.delenv(name, raising=False)
    checked = CliHome(home, podctl_home / "xdg")
    yield checked
    pods.down_all()
    written = checked.written()
    shown = "\n  ".join(written[:30]) + (f"\n  ... and {len(written) - 30} more" if len(written) > 30 else "")
    assert not written, f"the agents wrote in the user's home (or $XDG_STATE_HOME):\n  {shown}"
