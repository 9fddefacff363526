"""The real Claude Code (pinned in tests/clis/package.json) in a pod, against a fake Messages API."""

from __future__ import annotations

import re
from pathlib import Path

from podctl.hooks.claude import ADAPTER

from ..fakes.anthropic_api import FakeAnthropic, request_text, tool_names
from ..helpers import agent_state, pane_text, podctl, wait_for_pane, wait_until, write_pod

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def pod_text(base_url: str, name: str = "cl") -> str:
    return (
        f"name: {name}\nagents:\n  rev:\n    cli: claude\n    model: claude-sonnet-4-5\n    role: reviews diffs\n"
        f"    env: {{ANTHROPIC_BASE_URL: '{base_url}', ANTHROPIC_API_KEY: sk-ant-test-0123456789abcdefghij,"
        " CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1'}\n"
        "  boss: {cli: script}\n"
    )


def ask_id_in(body: dict) -> int:
    return int(re.findall(r"ask #(\d+) from user", request_text(body))[-1])


def test_claude_agent_is_woken_injected_and_answers_through_the_tools(cli_env: Path, tmp_path: Path, pods) -> None:
    with FakeAnthropic() as fake:
        fake.delay_s = 4.0
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "LGTM from claude"}},
            {"text": "Replied to the review."},
        ]
        pods.up(write_pod(tmp_path / "cl", pod_text(fake.base_url)))
        wait_for_pane("cl", "rev", "for shortcuts", timeout=120)

        podctl("send", "cl", "--to", "rev", "--ask", "Please review src/feature.py")
        try:
            first = wait_until(lambda: fake.conversation()[:1], timeout=60, message="Claude's first request")[0]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{pane_text('cl', 'rev')}\n{podctl('status', 'cl').stdout}\n{fake.paths}") from None
        assert {f"mcp__podctl__{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        text = request_text(first)
        assert ADAPTER.wake_text in text, "the nudge started the turn"
        assert "Please review src/feature.py" in text, "the ask was injected at prompt submit"

        wait_until(lambda: agent_state("cl", "rev") == "busy", timeout=30, message="rev busy during its turn")
        podctl("send", "cl", "--to", "rev", "note sent while busy")
        wait_until(lambda: "rev → user reply to #" in podctl("tail", "cl").stdout, timeout=60,
                   message="the post_reply tool call to reach the broker")
        assert "LGTM from claude" in podctl("tail", "cl").stdout

        second = wait_until(lambda: fake.conversation()[1:2], timeout=60, message="the request after the tool call")[0]
        assert request_text(second).count("note sent while busy") == 1, "injected once, after the tool call"
        wait_until(lambda: agent_state("cl", "rev") == "idle", timeout=60, message="rev idle after its turn")
        assert not (cli_env / ".claude").exists() and not (cli_env / ".claude.json").exists()
