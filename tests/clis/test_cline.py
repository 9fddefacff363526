"""The real Cline CLI (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions
API (its openai-compatible provider, as `cline auth -b` configures it): podctl's Cline plugin
injects at turn start and after each tool call and reports busy/idle through the same hook command
as every CLI; woken by a typed nudge; answers through post_reply; a review asked of another agent."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from podctl.hooks.cline import ADAPTER

from ..conftest import Pods
from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import agent_state, podctl, tmux_out, wait_for_pane, wait_until, write_pod
from . import flow
from .conftest import CliHome
from .test_qwen import REVIEWER

COUNTED = ("input_tokens", "cached_input_tokens", "output_tokens", "requests")
"""Cline records no reasoning tokens apart (docs/usage.md)."""


def test_cline_agent_is_woken_injected_answers_and_gets_a_review(cli_env: CliHome, tmp_path: Path, pods: Pods) -> None:
    with FakeChat(tool_prefix="podctl__") as fake:
        fake.script = flow.agent_script("cl", "rev") + flow.probe_steps("run_commands", {"commands": [flow.PROBE]})
        # The user's own provider settings, made as a user makes them (in the test's HOME).
        subprocess.run(["cline", "auth", "-p", "openai", "-b", fake.base_url, "-k", "dummy", "-m", "fake-model"],
                       check=True, capture_output=True, timeout=120)
        cli_env.users_own()
        agent = "  cl:\n    cli: cline\n    model: fake-model\n    role: writes code\n"
        pods.up(write_pod(tmp_path / "cl", "name: cl\nagents:\n" + agent + REVIEWER))
        wait_for_pane("cl", "cl", ADAPTER.wake_ready_text, timeout=120)
        wait_until(lambda: agent_state("cl", "cl") == "idle", timeout=60, message="idle: its plugin reported it up")

        flow.answers_an_ask("cl", "cl")
        first = fake.conversation()[0]
        assert {f"podctl__{t}" for t in flow.TOOLS} <= tool_names(first), tool_names(first)
        assert ADAPTER.wake_text in request_text(first), "woken by the typed nudge"
        assert "You are agent `cl` of the podctl pod `cl`" in request_text(first), "the introduction at the first turn"
        assert "How is the build?" in request_text(first), "the ask was added to the turn at its start"

        woken = flow.tell_after_a_tool_call("cl", "cl", fake)
        assert "You are agent" not in flow.last_user_text(woken), "the introduction once"
        flow.gets_a_review("cl", "cl", fake, "rev", "LGTM from rev: Please review src/feature.py")
        flow.commands_get_the_users_folders("cl", "cl", tmp_path / "cl")
        flow.usage_matches("cl", {"cl": fake}, COUNTED)


def test_cline_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    flow.is_a_cli_like_any_other(tmp_path, "cline", "3.0.65")


def test_cline_tool_calls_under_permissions_ask_block_the_agent_and_are_answered_without_attaching(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """Cline approves every tool call by default; under `permissions: ask` (auto-approve off) each
    call but podctl's (they never ask) blocks the agent with the tool and command (podctl's plugin asks podctl first);
    `approve` runs it; `deny` does not, and the model reads the reason; its ask_question blocks it on
    the question until answered in the pane; a 401 from its model server shows it failed with its
    words within seconds."""
    work = tmp_path / "ka"
    with FakeChat(tool_prefix="podctl__") as fake:
        question = {"call": "ask_question", "builtin": True,
                    "arguments": {"question": "Which database?", "options": ["sqlite", "postgres"]}}
        fake.script = [*flow.agent_script("w", "rev")[:2],
                       run("touch approved.txt"), run("touch denied.txt"), question, {"text": "Done."}]
        subprocess.run(["cline", "auth", "-p", "openai", "-b", fake.base_url, "-k", "dummy", "-m", "fake-model"],
                       check=True, capture_output=True, timeout=120)
        cli_env.users_own()
        agent = "  w:\n    cli: cline\n    model: fake-model\n    role: writes code\n    permissions: ask\n"
        pods.up(write_pod(work, "name: ka\nagents:\n" + agent))
        wait_for_pane("ka", "w", ADAPTER.wake_ready_text, timeout=120)
        wait_until(lambda: agent_state("ka", "w") == "idle", timeout=60, message="idle: its plugin reported it up")
        flow.answers_an_ask("ka", "w")  # podctl's own tools never ask, auto-approve off or not
        podctl("send", "ka", "--to", "w", "make the files")

        flow.approve_runs_and_deny_carries_the_reason("ka", "w", work, fake, "run_commands")

        asked = wait_until(lambda: flow.blocked_on("ka", "w", "Which database?"), timeout=60, message="w asks its question")
        assert (asked["kind"], asked["tool"], asked["answerable"]) == ("question", "ask_question", False), asked
        wait_for_pane("ka", "w", "Cline is asking a question")
        tmux_out("send-keys", "-t", "=ka:=w", "Down")  # the person picks the second option in the pane
        tmux_out("send-keys", "-t", "=ka:=w", "Enter")
        wait_until(lambda: any("postgres" in request_text(r) for r in fake.conversation()[5:]), timeout=60,
                   message="the answer in the model's next request")
        assert "blocked" not in flow.row_of("ka", "w"), "the question answered, the tool ended"

        failed = flow.fails_on_a_401("ka", "w", fake)
        assert "Incorrect API key provided" in failed["reason"], failed  # the 401's own words, as Cline gives them


def run(command: str) -> dict[str, Any]:
    """Cline's own shell tool."""
    return {"call": "run_commands", "builtin": True, "arguments": {"commands": [command]}}
