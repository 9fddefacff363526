"""The pod file's `permissions` for Copilot CLI and Cline: their own flags and settings, never wider
than the file says, whatever the user's own settings or the CLI's default."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from podctl.hooks.adapter import AgentContext, get_adapter


def context(tmp_path: Path, cli: str, permissions: str | None) -> AgentContext:
    agent_dir = tmp_path / "state" / "agents" / "a"
    agent_dir.mkdir(parents=True, exist_ok=True)
    ctx = AgentContext(pod="p", agent="a", cli=cli, role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                       agent_dir=agent_dir, token="t")
    return replace(ctx, permissions=permissions)


@pytest.mark.parametrize(("permissions", "manual", "flags"), [
    (None, "allow-all", []), ("ask", "manual", []), ("edits", "manual", ["--allow-tool", "write"]),
    ("full", "allow-all", ["--allow-all"]),
])
def test_copilot_keeps_the_pod_files_mode_over_the_users_allow_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, permissions: str | None, manual: str, flags: list[str]
) -> None:
    user = tmp_path / "user-copilot"
    user.mkdir()
    (user / "settings.json").write_text(json.dumps({"defaultPermissionMode": "allow-all"}))
    monkeypatch.setenv("COPILOT_HOME", str(user))
    ctx = context(tmp_path, "copilot", permissions)
    adapter = get_adapter("copilot")
    adapter.prepare(ctx)
    settings = json.loads((ctx.agent_dir / "copilot-home" / "settings.json").read_text())
    assert settings["defaultPermissionMode"] == manual, "ask and edits are not widened by the user's own mode"
    assert {"notification", "errorOccurred"} <= set(settings["hooks"])
    argv = adapter.launch(ctx).argv
    tail = [a for a in argv[argv.index("--no-ask-user") + 1:] if a != "--disable-client-telemetry"]
    assert tail == flags


@pytest.mark.parametrize(("permissions", "flags"), [
    (None, []), ("ask", ["--auto-approve", "false"]), ("edits", ["--auto-approve", "false"]),
    ("full", ["--auto-approve", "true"]),
])
def test_cline_asks_under_ask_and_edits_although_its_default_approves_everything(
    tmp_path: Path, permissions: str | None, flags: list[str]
) -> None:
    ctx = context(tmp_path, "cline", permissions)
    argv = get_adapter("cline").launch(ctx).argv
    assert argv[argv.index("--data-dir") + 2:] == flags
