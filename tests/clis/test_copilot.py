"""The real GitHub Copilot CLI (pinned in tests/clis/package.json) in a pod, offline against a fake
Chat Completions API (its BYOK provider, `COPILOT_OFFLINE`): woken by a typed nudge, messages
injected at turn start and after a tool call, answers through post_reply, and a cross-review with
a real Qwen Code agent."""

from __future__ import annotations

from pathlib import Path

from podctl.hooks.copilot import ADAPTER

from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import wait_for_pane, write_pod
from . import flow
from .conftest import CliHome
from .test_qwen import qwen_agent


def copilot_agent(name: str, base_url: str) -> str:
    return (
        f"  {name}:\n    cli: copilot\n    model: fake-model\n    role: writes code\n    args: ['--allow-all-tools']\n"
        f"    env: {{COPILOT_OFFLINE: 'true', COPILOT_PROVIDER_BASE_URL: '{base_url}', COPILOT_PROVIDER_API_KEY: dummy}}\n"
    )


def test_copilot_agent_is_woken_injected_answers_and_reviews_with_a_qwen_agent(
    cli_env: CliHome, tmp_path: Path, pods
) -> None:
    with FakeChat(tool_prefix="podctl-") as fake, FakeChat(tool_prefix="mcp__podctl__") as qwen_fake:
        fake.script = flow.agent_script("cp", "qw") + flow.probe_steps(
            "bash", {"command": flow.PROBE, "description": "print the cache and data folders"})
        qwen_fake.script = [
            {"call": "post_reply", "arguments": lambda body: {
                "ask_id": flow.ask_id_in(body, "cp"), "text": "LGTM from qwen: the loop bound is right"}},
            {"text": "Reviewed."},
        ]
        pod = "name: cp\nagents:\n" + copilot_agent("cp", fake.base_url) + qwen_agent("qw", qwen_fake.base_url)
        pods.up(write_pod(tmp_path / "cp", pod))
        wait_for_pane("cp", "cp", ADAPTER.wake_ready_text, timeout=120)

        flow.answers_an_ask("cp", "cp")
        first = fake.conversation()[0]
        assert {f"podctl-{t}" for t in flow.TOOLS} <= tool_names(first), tool_names(first)
        assert "ask_user" not in tool_names(first), "no question dialog can open in an unattended pane"
        assert "You are agent `cp` of the podctl pod `cp`" in request_text(first), "the introduction at the first prompt"
        assert ADAPTER.wake_text in flow.last_user_text(first), "woken by the typed nudge"
        assert "How is the build?" in request_text(first), "the ask came with the introduction, at the first prompt"

        flow.tell_after_a_tool_call("cp", "cp", fake)
        flow.gets_a_review("cp", "cp", fake, "qw", "LGTM from qwen: the loop bound is right")
        assert any("Please review src/feature.py" in request_text(r) for r in qwen_fake.conversation())
        flow.commands_get_the_users_folders("cp", "cp", tmp_path / "cp")
        flow.usage_matches("cp", {"cp": fake, "qw": qwen_fake})


def test_copilot_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    flow.is_a_cli_like_any_other(tmp_path, "copilot", "1.0.102")
