"""The Kilo adapter is OpenCode's under Kilo's names: the same plugin, Kilo's variables and folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podctl.hooks.adapter import AgentContext
from podctl.hooks.kilo import ADAPTER
from podctl.hooks.opencode import ADAPTER as OPENCODE


def test_kilo_gets_opencodes_plugin_and_its_own_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_config = tmp_path / "xdg-config"
    (user_config / "kilo").mkdir(parents=True)
    (user_config / "kilo" / "kilo.json").write_text('{"provider": {}}')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user_config))
    agent_dir = tmp_path / "state" / "agents" / "ki"
    agent_dir.mkdir(parents=True)
    ctx = AgentContext(pod="p", agent="ki", cli="kilo", role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                       agent_dir=agent_dir, token="t", model="fake/fake-model")
    ADAPTER.prepare(ctx)

    config = json.loads((agent_dir / "kilo-config" / "kilo.json").read_text())
    assert config["$schema"] == "https://app.kilo.ai/config.json" and config["mcp"]["podctl"]["timeout"] > 50_000
    assert (agent_dir / "kilo-config" / "plugin" / "podctl.js").read_text() == OPENCODE.plugin(ctx)
    assert (agent_dir / "kilo-xdg-config" / "kilo" / "kilo.json").read_text() == '{"provider": {}}', "the user's copied"
    env = ADAPTER.launch(ctx).env
    assert env["KILO_CONFIG_DIR"] == str(agent_dir / "kilo-config") and env["XDG_DATA_HOME"] == str(agent_dir / "kilo-data")
    assert json.loads(env["KILO_PERMISSION"])["suggest"] == "deny" and env["KILO_DISABLE_AUTOUPDATE"] == "1"
    assert not any(name.startswith("OPENCODE_") for name in env)
    shared = tmp_path / ".cache" / "kilo"
    assert env["XDG_CACHE_HOME"] == str(shared) and env["npm_config_cache"] == str(shared / "npm"), "not the user's caches"
    assert env["KILO_TELEMETRY_LEVEL"] == "off" and env["KILO_DISABLE_PRESENCE"] == "1"
    assert "KILO_TELEMETRY_LEVEL" not in OPENCODE.launch(ctx).env
    assert "suggest" not in json.loads(OPENCODE.launch(ctx).env["OPENCODE_PERMISSION"])
