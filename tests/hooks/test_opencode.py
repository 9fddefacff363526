"""The OpenCode adapter's plugin gives the agent's own commands the user's folders back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from podctl.hooks.adapter import AgentContext
from podctl.hooks.opencode import ADAPTER


def test_commands_get_the_users_cache_back_as_the_agents_env_or_podctls_environment_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/home/u/data")
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "npm_config_cache"):
        monkeypatch.delenv(name, raising=False)
    agent_dir = tmp_path / "state" / "agents" / "oc"
    agent_dir.mkdir(parents=True)
    ctx = AgentContext(pod="p", agent="oc", cli="opencode", role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                       agent_dir=agent_dir, token="t", env={"XDG_CACHE_HOME": "/home/u/agent cache"})
    found = re.search(r"const USER_ENV = (.*)\n", ADAPTER.plugin(ctx))
    assert found is not None
    assert json.loads(found.group(1)) == {
        "XDG_CACHE_HOME": "/home/u/agent cache", "XDG_DATA_HOME": "/home/u/data",
        "XDG_CONFIG_HOME": None, "XDG_STATE_HOME": None, "npm_config_cache": None,
    }, "the agent's env first, then podctl's environment; none (unset) when neither has it"
    env = ADAPTER.launch(ctx).env
    assert env["XDG_CACHE_HOME"] == str(tmp_path / ".cache" / "opencode"), "the CLI itself gets podctl's shared cache"
