"""The Qwen Code adapter's settings: the user's own under podctl's needs, their files only read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podctl.hooks.adapter import AgentContext
from podctl.hooks.qwen import ADAPTER, INPUT_FILE


def context(tmp_path: Path, env: dict[str, str] | None = None) -> AgentContext:
    agent_dir = tmp_path / "state" / "agents" / "qw"
    agent_dir.mkdir(parents=True)
    return AgentContext(pod="p", agent="qw", cli="qwen", role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                        agent_dir=agent_dir, token="t", model="qwen3-coder-plus", env=env or {})


def test_the_users_settings_are_kept_under_what_podctl_needs_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user-qwen"
    user.mkdir()
    own = {
        "modelProviders": {"openai": [{"id": "qwen3-coder-plus", "baseUrl": "https://example.invalid/v1"}]},
        "security": {"auth": {"selectedType": "openai"}},
        "permissions": {"allow": ["run_shell_command(git *)"]},
        "ui": {"enableFollowupSuggestions": True},
        "hooks": {"Stop": [{"matcher": "", "hooks": [{"type": "command", "command": "notify-send done"}]}]},
    }
    (user / "settings.json").write_text(json.dumps(own))
    (user / ".env").write_text("OPENAI_API_KEY=sk-user\n")
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    monkeypatch.setenv("QWEN_HOME", str(user))
    ctx = context(tmp_path, env={"ANTHROPIC_API_KEY": "a"})
    ADAPTER.prepare(ctx)

    home = ctx.agent_dir / "qwen-home"
    settings = json.loads((home / "settings.json").read_text())
    assert settings["modelProviders"] == own["modelProviders"]
    assert settings["security"]["auth"]["selectedType"] == "openai", "the user's auth type, not the one guessed from env"
    assert settings["ui"]["enableFollowupSuggestions"] is True, "podctl's defaults yield to the user's"
    assert settings["general"]["enableAutoUpdate"] is False and settings["model"]["name"] == "qwen3-coder-plus"
    assert settings["permissions"]["allow"] == ["run_shell_command(git *)", "mcp__podctl__*"]
    assert settings["permissions"]["deny"] == ["ask_user_question"]
    stop = settings["hooks"]["Stop"]
    assert stop[0]["hooks"][0]["command"] == "notify-send done" and "fast.py" in stop[1]["hooks"][0]["command"]
    assert set(settings["hooks"]) == {"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "StopFailure", "SessionEnd",
                                      "PermissionRequest", "Notification"}
    held = settings["hooks"]["PermissionRequest"][0]["hooks"][0]
    assert "--hold-ms" in held["command"] and held["timeout"] == ctx.hold_timeout_s, "the CLI waits longer than the hold"
    assert settings["mcpServers"]["podctl"]["timeout"] > 50_000, "above wait_for_reply's cap"
    assert (home / ".env").is_symlink() and (home / ".env").resolve() == user / ".env"
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before

    launch = ADAPTER.launch(ctx)
    assert launch.env["QWEN_HOME"] == str(home)
    assert launch.argv[:3] == ["qwen", "--input-file", str(ctx.agent_dir / INPUT_FILE)]


def test_without_settings_of_the_users_the_api_key_in_the_environment_picks_the_auth_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEN_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ctx = context(tmp_path, env={"ANTHROPIC_API_KEY": "a"})
    ADAPTER.prepare(ctx)
    settings = json.loads((ctx.agent_dir / "qwen-home" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "anthropic", "else a Connect a Provider dialog opens"
    assert settings["ui"]["enableFollowupSuggestions"] is False


def test_the_wake_is_one_submit_line_in_the_input_file(tmp_path: Path) -> None:
    assert ADAPTER.wake_input(tmp_path, ADAPTER.wake_text) and ADAPTER.wake_input(tmp_path, ADAPTER.wake_text)
    lines = (tmp_path / INPUT_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"type": "submit", "text": ADAPTER.wake_text}] * 2
    assert not ADAPTER.wake_input(tmp_path / "gone", ADAPTER.wake_text), "no folder: typed instead"


@pytest.mark.parametrize(("permissions", "flags"), [(None, []), ("ask", ["--approval-mode", "default"]),
                                                    ("edits", ["--approval-mode", "auto-edit"]),
                                                    ("full", ["--approval-mode", "yolo"])])
def test_the_pod_files_permissions_pick_its_approval_mode(tmp_path: Path, permissions: str | None, flags: list[str]) -> None:
    """Without `permissions` Qwen Code keeps its own default (auto); each mode is one of its approval modes."""
    from dataclasses import replace

    ctx = replace(context(tmp_path), permissions=permissions)
    argv = ADAPTER.launch(ctx).argv
    assert [a for a in argv if a in ("--approval-mode", "default", "auto-edit", "yolo")] == flags
