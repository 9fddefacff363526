"""The Copilot CLI adapter's files: the user's settings and MCP servers kept, their folder only read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podctl.hooks.adapter import AgentContext
from podctl.hooks.copilot import ADAPTER


def test_the_users_hooks_and_servers_are_kept_the_workdir_trusted_and_their_folder_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-copilot"
    user.mkdir()
    (user / "settings.json").write_text(json.dumps({
        "model": "gpt-5.5", "hooks": {"agentStop": [{"type": "command", "command": "notify-send done"}]},
    }))
    (user / "mcp-config.json").write_text(json.dumps({"mcpServers": {"docs": {"type": "http", "url": "https://x.invalid"}}}))
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    monkeypatch.setenv("COPILOT_HOME", str(user))
    agent_dir = tmp_path / "state" / "agents" / "cp"
    agent_dir.mkdir(parents=True)
    ctx = AgentContext(pod="p", agent="cp", cli="copilot", role="r", workdir=tmp_path / "work",
                       state_dir=tmp_path / "state", agent_dir=agent_dir, token="t")
    ADAPTER.prepare(ctx)
    ADAPTER.prepare(ctx)

    home = agent_dir / "copilot-home"
    settings = json.loads((home / "settings.json").read_text())
    assert settings["model"] == "gpt-5.5"
    stop = settings["hooks"]["agentStop"]
    assert len(stop) == 2 and stop[0]["command"] == "notify-send done" and "--event turn_end" in stop[1]["command"]
    assert "--intro" in settings["hooks"]["sessionStart"][0]["command"], "its session starts with the first prompt"
    servers = json.loads((home / "mcp-config.json").read_text())["mcpServers"]
    assert set(servers) == {"docs", "podctl"} and servers["podctl"]["timeout"] > 50_000
    assert json.loads((home / "config.json").read_text())["trustedFolders"] == [str(tmp_path / "work")]
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before

    launch = ADAPTER.launch(ctx)
    assert launch.env["COPILOT_HOME"] == str(home) and launch.env["COPILOT_AUTO_UPDATE"] == "false"
    moved = [f"XDG_CACHE_HOME={agent_dir / 'copilot-xdg-cache'}", f"BASH_ENV={agent_dir / 'bash-env.sh'}"]
    assert launch.argv[:3] == ["env", *moved], "set for the CLI, not for the shell tmux starts it with"
    assert launch.argv[3:5] == ["sh", "-c"] and launch.argv[7:11] == ["copilot", "--allow-tool", "podctl", "--no-ask-user"]
    assert "--disable-client-telemetry" in launch.argv
    shared = tmp_path / ".cache" / "copilot"
    assert launch.env["COPILOT_PKG_CACHE_HOME"] == str(shared), "one unpacked package for every agent, not in the user's home"
    assert shared.stat().st_mode & 0o777 == shared.parent.stat().st_mode & 0o777 == 0o700
    assert settings["bashEnv"] is True


def test_copilots_shell_commands_get_the_users_cache_folder_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path / "user-copilot"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    agent_dir = tmp_path / "state" / "agents" / "cp"
    agent_dir.mkdir(parents=True)
    ctx = AgentContext(pod="p", agent="cp", cli="copilot", role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                       agent_dir=agent_dir, token="t")
    ADAPTER.prepare(ctx)
    assert (agent_dir / "bash-env.sh").read_text() == "unset XDG_CACHE_HOME\n", "the user has none: none"
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/u/my cache")
    ADAPTER.prepare(ctx)
    assert (agent_dir / "bash-env.sh").read_text() == "export XDG_CACHE_HOME='/home/u/my cache'\n"
