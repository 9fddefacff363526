"""The Cline adapter's files and usage: the user's settings copied, podctl's plugin, no notice waits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podctl.hooks.adapter import AgentContext
from podctl.hooks.cline import ADAPTER


def test_the_users_providers_and_servers_are_copied_with_the_pods_model_and_the_notices_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-cline" / "data" / "settings"
    user.mkdir(parents=True)
    provider = {"settings": {"provider": "openai", "apiKey": "k", "model": "old"}, "updatedAt": "2026-12-04T20:03:45Z"}
    (user / "providers.json").write_text(json.dumps({"version": 1, "lastUsedProvider": "openai", "providers": {"openai": provider}}))
    (user / "cline_mcp_settings.json").write_text(json.dumps({"mcpServers": {"docs": {"command": "docs-mcp"}}}))
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    monkeypatch.setenv("CLINE_DIR", str(tmp_path / "user-cline"))
    monkeypatch.delenv("CLINE_DATA_DIR", raising=False)
    agent_dir = tmp_path / "state" / "agents" / "cl"
    agent_dir.mkdir(parents=True)
    ctx = AgentContext(pod="p", agent="cl", cli="cline", role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                       agent_dir=agent_dir, token="t", model="qwen3-coder")
    ADAPTER.prepare(ctx)

    settings = agent_dir / "cline-data" / "settings"
    providers = json.loads((settings / "providers.json").read_text())
    assert providers["providers"]["openai"]["settings"] == {"provider": "openai", "apiKey": "k", "model": "qwen3-coder"}
    assert (settings / "providers.json").stat().st_mode & 0o077 == 0
    servers = json.loads((settings / "cline_mcp_settings.json").read_text())["mcpServers"]
    assert set(servers) == {"docs", "podctl"} and servers["podctl"]["timeout"] > 50, "seconds, above wait_for_reply's cap"
    assert all(json.loads((settings / "cli-notices.json").read_text())["shown"].values())
    plugin = (agent_dir / "cline-config" / "plugins" / "podctl.js").read_text()
    assert "/*HOOKS*/null" not in plugin and "--intro" in plugin and str(agent_dir / "token") in plugin
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before
    shared = tmp_path / ".cache" / "cline"
    assert ADAPTER.launch(ctx).argv == [
        "env", f"XDG_DATA_HOME={shared}", f"BASH_ENV={agent_dir / 'bash-env.sh'}",
        "cline", "--config", str(agent_dir / "cline-config"), "--data-dir", str(agent_dir / "cline-data"),
    ], "its UI library's data folder is podctl's, not the user's ~/.local/share"
    assert (agent_dir / "bash-env.sh").read_text().startswith(("unset XDG_DATA_HOME", "export XDG_DATA_HOME=")), \
        "its commands get the user's data folder back"


def test_usage_is_read_from_the_session_documents_once_per_change(tmp_path: Path) -> None:
    session = tmp_path / "cline-data" / "sessions" / "s1"
    session.mkdir(parents=True)
    document = session / "s1.messages.json"
    messages = [
        {"id": "u1", "role": "user", "content": [{"type": "text", "text": "hi"}], "ts": 1796414851737},
        {"id": "msg_a", "role": "assistant", "content": [], "ts": 1796414851833,
         "modelInfo": {"id": "qwen3-coder", "provider": "openai-compatible"},
         "metrics": {"inputTokens": 1934, "outputTokens": 56, "cacheReadTokens": 700, "cacheWriteTokens": 0}},
    ]
    document.write_text(json.dumps({"version": 1, "messages": messages}))
    records, state = ADAPTER.usage_pull(tmp_path, {})
    assert [(r.key, r.model, r.input, r.cached, r.output, r.reasoning) for r in records] == [
        ("msg_a", "qwen3-coder", 1234, 700, 56, 0)]
    assert records[0].ts == 1796414851.833
    assert ADAPTER.usage_pull(tmp_path, state)[0] == [], "an unchanged document is not read again"
