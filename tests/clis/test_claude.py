"""The real Claude Code (pinned in tests/clis/package.json) in a pod, against a fake Messages API."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from podctl.hooks.adapter import AgentContext
from podctl.hooks.claude import ADAPTER

from ..conftest import Pods
from ..fakes.anthropic_api import FakeAnthropic, request_text, tool_names
from ..helpers import agent_state, broker_call, pane_text, podctl, transcript, wait_for_pane, wait_until, write_pod
from .conftest import CliHome

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


BASH_PROBE = 'echo "XDG_CACHE_HOME=${XDG_CACHE_HOME-unset}" > bash-env.txt'
"""Run through Claude Code's own Bash tool: what the agent's commands see of the cache variable."""


class FakeAnthropicWithBash(FakeAnthropic):
    """The fake Messages API, where a script step `{"call": "Bash", ...}` calls Claude Code's
    built-in Bash tool instead of a podctl tool."""

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        events = super().answer(body)
        for event in events:
            blocks = [event.get("content_block"), *event.get("message", {}).get("content", [])]
            for block in blocks:
                if block and block.get("name") == "mcp__podctl__Bash":
                    block["name"] = "Bash"
        return events


def pod_text(base_url: str, name: str = "cl") -> str:
    return (
        f"name: {name}\nagents:\n  rev:\n    cli: claude\n    model: claude-sonnet-4-5\n    role: reviews diffs\n"
        "    args: ['--allowedTools', 'Bash']\n"
        f"    env: {{ANTHROPIC_BASE_URL: '{base_url}', ANTHROPIC_API_KEY: sk-ant-test-0123456789abcdefghij,"
        " CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1'}\n"
        "  boss: {cli: script}\n"
    )


def ask_id_in(body: dict[str, Any]) -> int:
    return int(re.findall(r"ask #(\d+) from user", request_text(body))[-1])


def test_claude_agent_is_woken_injected_and_answers_through_the_tools(
    cli_env: CliHome, tmp_path: Path, pods: Pods, podctl_home: Path
) -> None:
    with FakeAnthropicWithBash() as fake:
        fake.hold()
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "LGTM from claude"}},
            {"call": "Bash", "arguments": {"command": BASH_PROBE, "description": "print the cache variable"}},
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
        fake.release()
        wait_until(lambda: "rev → user reply to #" in transcript("cl"), timeout=60,
                   message="the post_reply tool call to reach the broker")
        assert "LGTM from claude" in podctl("tail", "cl").stdout

        second = wait_until(lambda: fake.conversation()[1:2], timeout=60, message="the request after the tool call")[0]
        assert request_text(second).count("note sent while busy") == 1, "injected once, after the tool call"
        wait_until(lambda: agent_state("cl", "rev") == "idle", timeout=60, message="rev idle after its turn")
        assert (tmp_path / "cl" / "bash-env.txt").read_text() == "XDG_CACHE_HOME=unset\n", \
            "the agent's own commands keep the user's cache folder"
        podctl("down", "cl")
        mcp_logs = podctl_home / "cl" / "agents" / "rev" / "claude-cache" / "claude-cli-nodejs"
        assert any(mcp_logs.rglob("mcp-logs-podctl/*.jsonl")), "the MCP logs went to the agent's folder"


def test_claude_bash_commands_get_the_users_cache_folder_and_env_file_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The set-value case of BASH_PROBE above (there the user's XDG_CACHE_HOME is unset): podctl's
    CLAUDE_ENV_FILE, run by bash the way Claude Code runs it, restores the user's value from the
    agent's `env` and still runs the user's own CLAUDE_ENV_FILE."""
    users_file = tmp_path / "user's env.sh"
    users_file.write_text("export FROM_USERS_FILE=yes\n")
    monkeypatch.setenv("CLAUDE_ENV_FILE", str(users_file))
    monkeypatch.setenv("XDG_CACHE_HOME", "/not/this/one")
    monkeypatch.setenv("HOME", str(tmp_path))
    agent_dir = tmp_path / "agents" / "rev"
    agent_dir.mkdir(parents=True)
    ctx = AgentContext(
        pod="cl", agent="rev", cli="claude", role="reviews", workdir=tmp_path, state_dir=tmp_path,
        agent_dir=agent_dir, token="t", env={"XDG_CACHE_HOME": "/home/u/my cache"},
    )
    ADAPTER.prepare(ctx)
    launch = ADAPTER.launch(ctx)
    assert launch.env["XDG_CACHE_HOME"] == str(agent_dir / "claude-cache")
    script = '. "$CLAUDE_ENV_FILE"; echo "$XDG_CACHE_HOME|${FROM_USERS_FILE-}"'
    out = subprocess.run(["bash", "-c", script], env={**os.environ, **launch.env}, capture_output=True, text=True, check=True)
    assert out.stdout == "/home/u/my cache|yes\n", out.stderr


def attention_pod(base_url: str, approvals: str = "") -> str:
    return (
        "name: ca\nagents:\n  w:\n    cli: claude\n    model: claude-sonnet-4-5\n    role: writes files\n"
        f"    env: {{ANTHROPIC_BASE_URL: '{base_url}', ANTHROPIC_API_KEY: sk-ant-test-0123456789abcdefghij,"
        " CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1'}\n"
        "  guard:\n    cli: script\n    script: {replies: 'allow: fine by {agent}'}\n"
        f"{approvals}"
    )


def bash(command: str) -> dict[str, Any]:
    return {"call": "Bash", "arguments": {"command": command, "description": "make a file"}}


def blocked_on(pod: str, agent: str, detail: str) -> dict[str, Any]:
    row = next(a for a in broker_call(pod, "status")["agents"] if a["name"] == agent)
    blocked = row.get("blocked") or {}
    return blocked if row["state"] == "blocked" and blocked.get("detail") == detail else {}


def test_claude_permission_requests_block_the_agent_and_are_answered_without_attaching(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """One Claude Code agent: a Bash call that needs permission blocks it with the tool and the
    command; `podctl approve` runs it; `podctl deny` does not, and the model reads the reason; a
    routed approval is answered by a script agent; a 401 from its model server shows it failed
    with the CLI's words within seconds."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.pod import file_digest, wait_applied

    work = tmp_path / "ca"
    with FakeAnthropicWithBash() as fake:
        fake.script = [bash("touch approved.txt"), bash("touch denied.txt"), {"text": "Done."},
                       bash("touch routed.txt"), {"text": "Done again."}]
        pod_file = write_pod(work, attention_pod(fake.base_url))
        pods.up(pod_file)
        wait_for_pane("ca", "w", "for shortcuts", timeout=120)
        podctl("send", "ca", "--to", "w", "make the files")

        blocked = wait_until(lambda: blocked_on("ca", "w", "touch approved.txt"), timeout=60, message="w blocked on Bash")
        assert (blocked["kind"], blocked["tool"], blocked["answerable"]) == ("permission", "Bash", True)
        assert podctl("approve", "ca", "w").stdout.strip() == "approved w: Bash  touch approved.txt"
        wait_until(lambda: (work / "approved.txt").exists(), timeout=30, message="the approved command to run")

        wait_until(lambda: blocked_on("ca", "w", "touch denied.txt"), timeout=60, message="w blocked again")
        podctl("deny", "ca", "w", "--reason", "NOT-IN-THIS-FOLDER-7")
        wait_until(lambda: any("NOT-IN-THIS-FOLDER-7" in request_text(r) for r in fake.conversation()), timeout=60,
                   message="the model's next request to carry the reason")
        assert not (work / "denied.txt").exists()
        wait_until(lambda: agent_state("ca", "w") == "idle", timeout=60, message="w idle after its turn")

        text = attention_pod(fake.base_url, "approvals: [{agents: [w], to: guard, timeout: 1m, then: deny}]\n")
        pod_file.write_text(text)
        wait_applied(PodPaths.of("ca"), pod_file, file_digest(text))
        podctl("send", "ca", "--to", "w", "one more file")
        wait_until(lambda: (work / "routed.txt").exists(), timeout=90, message="the guard's allow to run the command")
        assert "w: Bash  touch routed.txt: allowed by guard" in transcript("ca")

        wait_until(lambda: agent_state("ca", "w") == "idle", timeout=60, message="w idle again")
        fake.refusing = True
        podctl("send", "ca", "--to", "w", "and the last one")
        failed = wait_until(lambda: next(a for a in broker_call("ca", "status")["agents"] if a["name"] == "w").get("failed"),
                            timeout=20, message="w failed on the 401")
        assert "401" in failed["reason"] and "invalid x-api-key" in failed["reason"]
