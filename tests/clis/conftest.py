"""The environment every real-CLI test runs in: the pinned CLIs first on PATH, a throwaway HOME
(nothing may touch the user's own CLI config), no proxy and no inherited keys; and the check that
an agent wrote nothing outside its own folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

INHERITED = (
    "OPENAI_API_KEY", "CODEX_HOME", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_CLI_HOME", "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy",
    "OPENAI_BASE_URL", "OPENAI_MODEL", "QWEN_HOME", "COPILOT_HOME", "COPILOT_MODEL", "COPILOT_GITHUB_TOKEN", "GH_TOKEN",
    "GITHUB_TOKEN", "COPILOT_PROVIDER_BASE_URL", "COPILOT_PROVIDER_API_KEY", "COPILOT_OFFLINE", "XDG_CACHE_HOME",
    "CLINE_DIR", "CLINE_DATA_DIR",
)


@pytest.fixture
def cli_env(cli_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Returns the throwaway HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{cli_bin}:{os.environ['PATH']}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in INHERITED:
        monkeypatch.delenv(name, raising=False)
    return home


def outside_writes(home: Path, podctl_home: Path) -> set[str]:
    """Every file, folder and symlink a test's agents left in the throwaway HOME, and in the
    `$XDG_STATE_HOME` the root conftest points into PODCTL_HOME (outside any agent's folder).

    docs/adapters.md ("Writes outside the agent's folder") lists what a CLI may still leave here;
    at present nothing under HOME, for any of the three CLIs."""
    roots = {"~": home, "$XDG_STATE_HOME": podctl_home / "xdg"}
    return {f"{label}/{path.relative_to(root)}" for label, root in roots.items() for path in root.rglob("*")}
