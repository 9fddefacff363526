"""The real Kilo CLI (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions
API: OpenCode's plugin, under Kilo's names, injects and reports busy/idle through the same hook
command as every CLI, and wakes it; a review asked of another agent."""

from __future__ import annotations

from pathlib import Path

from podctl.hooks.kilo import ADAPTER

from ..conftest import Pods
from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import wait_for_pane, write_pod
from . import flow
from .conftest import CliHome
from .test_opencode import opencode_agent
from .test_qwen import REVIEWER


def test_kilo_agent_is_woken_injected_answers_and_gets_a_review(cli_env: CliHome, tmp_path: Path, pods: Pods) -> None:
    with FakeChat() as fake:
        fake.script = flow.agent_script("ki", "rev") + flow.probe_steps(
            "bash", {"command": flow.PROBE, "description": "print the cache and data folders"})
        agent = opencode_agent("ki", fake.base_url, cli="kilo", env="KILO")
        pods.up(write_pod(tmp_path / "ki", "name: ki\nagents:\n" + agent + REVIEWER))
        wait_for_pane("ki", "ki", ADAPTER.wake_ready_text, timeout=120)

        flow.answers_an_ask("ki", "ki")
        first = fake.conversation()[0]
        assert {f"podctl_{t}" for t in flow.TOOLS} <= tool_names(first), tool_names(first)
        assert not {"question", "suggest"} & tool_names(first), "no tool that waits for a person"
        assert "How is the build?" in request_text(first), "the ask was added to the user's message at turn start"

        woken = flow.tell_after_a_tool_call("ki", "ki", fake)
        assert ADAPTER.wake_text not in flow.last_user_text(woken), "the plugin woke it: nothing was typed"
        flow.gets_a_review("ki", "ki", fake, "rev", "LGTM from rev: Please review src/feature.py")
        flow.commands_get_the_users_folders("ki", "ki", tmp_path / "ki")
        flow.usage_matches("ki", {"ki": fake})


def test_kilo_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    flow.is_a_cli_like_any_other(tmp_path, "kilo", "7.7.7")
