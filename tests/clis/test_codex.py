"""The real Codex CLI (pinned in tests/clis/package.json) in a pod, against a fake Responses API."""

from __future__ import annotations

import json
import re
from pathlib import Path

from podctl.hooks.codex import ADAPTER

from ..fakes.openai_responses import FakeResponses, request_text, tool_names
from ..helpers import agent_state, podctl, transcript, wait_for_pane, wait_until, write_pod
from .conftest import outside_writes

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def pod_text(base_url: str) -> str:
    provider = f'model_providers.fake={{name="fake", base_url="{base_url}", wire_api="responses", env_key="FAKE_OPENAI_API_KEY"}}'
    return (
        "name: cx\nagents:\n  rev:\n    cli: codex\n    model: gpt-test-fake\n    role: reviews diffs\n"
        f"    args: ['-c', 'model_provider=fake', '-c', {json.dumps(provider)}]\n"
        "    env: {FAKE_OPENAI_API_KEY: dummy}\n"
        "  boss: {cli: script}\n"
    )


def ask_id_in(body: dict) -> int:
    return int(re.findall(r"ask #(\d+) from user", request_text(body))[-1])


def test_codex_agent_is_woken_injected_and_answers_through_the_tools(
    cli_env: Path, tmp_path: Path, pods, podctl_home: Path
) -> None:
    with FakeResponses() as fake:
        fake.hold()
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "LGTM from codex"}},
            {"text": "Replied to the review."},
        ]
        pods.up(write_pod(tmp_path / "cx", pod_text(fake.base_url)))
        wait_for_pane("cx", "rev", "Ask Codex", timeout=120)
        codex_home = podctl_home / "cx" / "agents" / "rev" / "codex-home"
        assert not (codex_home / "bypass-hook-trust").exists(), "hooks were pre-trusted through codex app-server"
        assert (codex_home / "config.toml").read_text().count("trusted_hash") == 5

        podctl("send", "cx", "--to", "rev", "--ask", "Please review src/feature.py")
        first = wait_until(lambda: fake.conversation()[:1], timeout=60, message="Codex's first request")[0]
        assert {f"mcp__podctl.{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        text = request_text(first)
        assert ADAPTER.wake_text in text, "the nudge started the turn"
        assert "Please review src/feature.py" in text, "the ask was injected at prompt submit"

        wait_until(lambda: agent_state("cx", "rev") == "busy", timeout=30, message="rev busy during its turn")
        podctl("send", "cx", "--to", "rev", "note sent while busy")
        fake.release()
        wait_until(lambda: "rev → user reply to #" in transcript("cx"), timeout=60,
                   message="the post_reply tool call to reach the broker")
        assert "LGTM from codex" in podctl("tail", "cx").stdout

        second = wait_until(lambda: fake.conversation()[1:2], timeout=60, message="the request after the tool call")[0]
        assert request_text(second).count("note sent while busy") == 1, "injected once, at the next hook"
        wait_until(lambda: agent_state("cx", "rev") == "idle", timeout=60, message="rev idle after its turn")
        podctl("down", "cx")
        assert outside_writes(cli_env, podctl_home) == set(), "Codex wrote outside its agent folder"
