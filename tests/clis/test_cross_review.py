"""A full cross-model review with no human touch after the first message: the user asks the
writer (Claude Code) to get a review; its model asks the reviewer (Codex, then Gemini CLI); the
reviewer is woken and its model answers with post_reply; the writer's wait_for_reply returns the
answer and its next request contains it. All real CLIs, each against its own fake model server."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from ..conftest import Pods
from ..fakes import anthropic_api, gemini_api, openai_responses
from ..helpers import git_repo, podctl, tmux_out, wait_until, write_pod
from .conftest import CliHome


def writer_agent(base_url: str) -> str:
    return (
        "  writer:\n    cli: claude\n    model: claude-sonnet-4-5\n    role: writes code and asks for reviews\n"
        f"    env: {{ANTHROPIC_BASE_URL: '{base_url}', ANTHROPIC_API_KEY: sk-ant-test-0123456789abcdefghij,"
        " CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1'}\n"
    )


def reviewer_agent(cli: str, base_url: str) -> str:
    if cli == "codex":
        provider = (f'model_providers.fake={{name="fake", base_url="{base_url}", wire_api="responses",'
                    ' env_key="FAKE_OPENAI_API_KEY"}')
        return (
            "  reviewer:\n    cli: codex\n    model: gpt-test-fake\n    role: reviews diffs\n"
            f"    args: ['-c', 'model_provider=fake', '-c', {json.dumps(provider)}]\n"
            "    env: {FAKE_OPENAI_API_KEY: dummy}\n"
        )
    return (
        "  reviewer:\n    cli: gemini\n    model: gemini-2.5-flash\n    role: reviews diffs\n"
        f"    env: {{GOOGLE_GEMINI_BASE_URL: '{base_url}', GEMINI_API_KEY: dummy}}\n"
    )


def last_ask_id(text: str) -> int:
    return int(re.findall(r"ask_id[\\\"': ]+(\d+)", text)[-1])


@pytest.mark.parametrize("reviewer", ["codex", "gemini"])
def test_claude_writer_gets_a_review_from_another_model_family(cli_env: CliHome, tmp_path: Path, pods: Pods, reviewer: str) -> None:
    reviewer_fake = openai_responses.FakeResponses() if reviewer == "codex" else gemini_api.FakeGemini()
    reviewer_text = openai_responses.request_text if reviewer == "codex" else gemini_api.request_text
    with anthropic_api.FakeAnthropic() as writer_fake, reviewer_fake:
        writer_fake.script = [
            {"call": "ask", "arguments": {"to": "reviewer", "text": "Please review src/feature.py: is the loop bound right?"}},
            {"call": "wait_for_reply",
             "arguments": lambda body: {"ask_id": last_ask_id(anthropic_api.request_text(body)), "timeout_ms": 120000}},
            {"text": "The reviewer approved; done."},
        ]
        reviewer_fake.script = [
            {"call": "post_reply", "arguments": lambda body: {
                "ask_id": int(re.findall(r"ask #(\d+) from writer", reviewer_text(body))[-1]),
                "text": f"LGTM from {reviewer}: the loop bound is right",
            }},
            {"text": "Answered the writer."},
        ]
        writer = writer_agent(writer_fake.base_url)
        folder = tmp_path / "cross"
        if reviewer == "codex":  # the writer in a git worktree of its own: its trust is given there, no dialog stalls it
            git_repo(folder)
            writer += "    worktree: true\n"
        pod = f"name: x-{reviewer}\nagents:\n{writer}{reviewer_agent(reviewer, reviewer_fake.base_url)}"
        pods.up(write_pod(folder, pod))
        if reviewer == "codex":
            worktree = Path(os.environ["PODCTL_HOME"]) / f"x-{reviewer}" / "worktrees" / "writer"
            assert tmux_out("display-message", "-p", "-t", f"=x-{reviewer}:=writer",
                            "#{pane_current_path}").strip() == str(worktree)
        podctl("send", f"x-{reviewer}", "--to", "writer", "Get src/feature.py reviewed by the reviewer, then report.")

        def writer_saw_the_answer() -> bool:
            return any(f"LGTM from {reviewer}: the loop bound is right" in anthropic_api.request_text(r)
                       for r in writer_fake.conversation()[2:])

        try:
            wait_until(writer_saw_the_answer, timeout=150, message="the writer's next request to contain the review")
        except AssertionError as exc:
            from ..helpers import pane_text

            raise AssertionError(
                f"{exc}\n--- tail\n{podctl('tail', f'x-{reviewer}').stdout}\n--- status\n"
                f"{podctl('status', f'x-{reviewer}').stdout}\n--- writer pane\n{pane_text(f'x-{reviewer}', 'writer')}"
                f"\n--- reviewer pane\n{pane_text(f'x-{reviewer}', 'reviewer')[-3000:]}"
                f"\n--- writer requests: {len(writer_fake.conversation())}, reviewer requests: {len(reviewer_fake.conversation())}"
            ) from None
        asked = [r for r in reviewer_fake.conversation() if "Please review src/feature.py" in reviewer_text(r)]
        assert asked, "the reviewer's model received the writer's ask"
        history = podctl("tail", f"x-{reviewer}").stdout
        assert "writer → reviewer ask #" in history and "reviewer → writer reply to #" in history

        def usage_matches() -> bool:
            """Each agent's tokens are what its fake reported for its conversation, each request once."""
            agents = json.loads(podctl("usage", f"x-{reviewer}", "--json").stdout)["agents"]
            return all(
                {k: agents[name][k] for k in fake.reported()} == fake.reported()
                for name, fake in (("writer", writer_fake), ("reviewer", reviewer_fake))
            )

        try:
            wait_until(usage_matches, timeout=30, message="podctl usage to equal what the fakes reported")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nusage: {podctl('usage', f'x-{reviewer}', '--json').stdout}\n"
                f"writer fake: {writer_fake.reported()}\nreviewer fake: {reviewer_fake.reported()}"
            ) from None
        assert writer_fake.reported()["requests"] >= 3, "the writer's three scripted requests at least"
