"""The real Qwen Code (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions
API: woken through its input file, messages injected at turn start and after a tool call, answers
through post_reply, and a review asked of another agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podctl.hooks.qwen import ADAPTER, INPUT_FILE

from ..conftest import Pods
from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import podctl, status_of, wait_for_pane, write_pod
from . import flow
from .conftest import CliHome


def qwen_agent(name: str, base_url: str) -> str:
    return (
        f"  {name}:\n    cli: qwen\n    model: fake-model\n    role: writes code\n"
        f"    env: {{OPENAI_BASE_URL: '{base_url}', OPENAI_API_KEY: dummy}}\n"
    )


REVIEWER = "  rev:\n    cli: script\n    role: reviews code\n    script: {replies: 'LGTM from {agent}: {text}'}\n"


def test_qwen_agent_is_woken_injected_answers_and_gets_a_review(
    cli_env: CliHome, tmp_path: Path, pods: Pods, podctl_home: Path
) -> None:
    with FakeChat(tool_prefix="mcp__podctl__") as fake:
        fake.script = flow.agent_script("qw", "rev")
        pods.up(write_pod(tmp_path / "qw", "name: qw\nagents:\n" + qwen_agent("qw", fake.base_url) + REVIEWER))
        wait_for_pane("qw", "qw", ADAPTER.wake_ready_text, timeout=120)

        flow.answers_an_ask("qw", "qw")
        first = fake.conversation()[0]
        assert {f"mcp__podctl__{t}" for t in flow.TOOLS} <= tool_names(first), tool_names(first)
        assert "ask_user_question" not in tool_names(first), "no dialog can open in an unattended pane"
        assert "You are agent `qw` of the podctl pod `qw`" in request_text(first), "the session start hook's context"
        assert ADAPTER.wake_text in flow.last_user_text(first) and "How is the build?" in flow.last_user_text(first)
        inputs = (podctl_home / "qw" / "agents" / "qw" / INPUT_FILE).read_text()
        assert json.loads(inputs.splitlines()[0]) == {"type": "submit", "text": ADAPTER.wake_text}, "woken through its input file"
        assert next(a for a in status_of("qw")["agents"] if a["name"] == "qw")["last_wake"] in ("sent", "woken")

        flow.tell_after_a_tool_call("qw", "qw", fake)
        flow.gets_a_review("qw", "qw", fake, "rev", "LGTM from rev: Please review src/feature.py")
        flow.usage_matches("qw", {"qw": fake})


def test_qwen_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    flow.is_a_cli_like_any_other(tmp_path, "qwen", "0.24.4")


def shell(command: str) -> dict[str, Any]:
    """Qwen Code's own shell tool: it asks under `permissions: ask`."""
    return {"call": "run_shell_command", "builtin": True, "arguments": {"command": command, "description": "make a file"}}


def test_qwen_permission_requests_block_the_agent_and_are_answered_without_attaching(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """A Qwen Code agent under `permissions: ask` (its approval mode default): a shell command blocks it
    with the tool and the command (its PermissionRequest hook); `approve` runs it; `deny` does not,
    and the model reads the reason; a 401 from its model server shows it failed within seconds."""
    work = tmp_path / "qa"
    with FakeChat(tool_prefix="mcp__podctl__") as fake:
        fake.script = [shell("touch approved.txt"), shell("touch denied.txt"), {"text": "Done."}]
        agent = qwen_agent("w", fake.base_url) + "    permissions: ask\n"
        pods.up(write_pod(work, "name: qa\nagents:\n" + agent))
        wait_for_pane("qa", "w", ADAPTER.wake_ready_text, timeout=120)
        podctl("send", "qa", "--to", "w", "make the files")

        flow.approve_runs_and_deny_carries_the_reason("qa", "w", work, fake, "run_shell_command")

        failed = flow.fails_on_a_401("qa", "w", fake)
        assert "401" in failed["reason"], failed
