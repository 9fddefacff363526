"""The real Gemini CLI (pinned in tests/clis/package.json) in a pod, against a fake Gemini API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from podctl.hooks.gemini import ADAPTER

from ..conftest import Pods
from ..fakes.gemini_api import FakeGemini, request_text, tool_names
from ..helpers import agent_state, broker_call, podctl, tmux_out, transcript, wait_for_pane, wait_until, write_pod
from .conftest import CliHome

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def pod_text(base_url: str) -> str:
    return (
        "name: gm\nagents:\n  rev:\n    cli: gemini\n    model: gemini-2.5-flash\n    role: reviews diffs\n"
        f"    env: {{GOOGLE_GEMINI_BASE_URL: '{base_url}', GEMINI_API_KEY: dummy}}\n"
        "  boss: {cli: script}\n"
    )


def ask_id_in(body: dict[str, Any]) -> int:
    return int(re.findall(r"ask #(\d+) from user", request_text(body))[-1])


def test_gemini_agent_is_woken_injected_and_answers_through_the_tools(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    with FakeGemini() as fake:
        fake.hold()
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "LGTM from gemini"}},
            {"text": "Replied to the review."},
        ]
        pods.up(write_pod(tmp_path / "gm", pod_text(fake.base_url)))
        wait_for_pane("gm", "rev", "Type your message", timeout=120)

        podctl("send", "gm", "--to", "rev", "--ask", "Please review src/feature.py")
        first = wait_until(lambda: fake.conversation()[:1], timeout=60, message="Gemini's first request")[0]
        assert {f"mcp_podctl_{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        text = request_text(first)
        assert ADAPTER.wake_text in text, "the nudge started the turn"
        assert "Please review src/feature.py" in text, "the ask was injected before the turn"

        wait_until(lambda: agent_state("gm", "rev") == "busy", timeout=30, message="rev busy during its turn")
        podctl("send", "gm", "--to", "rev", "note sent while busy")
        fake.release()
        wait_until(lambda: "rev → user reply to #" in transcript("gm"), timeout=60,
                   message="the post_reply tool call to reach the broker")
        assert "LGTM from gemini" in podctl("tail", "gm").stdout

        second = wait_until(lambda: fake.conversation()[1:2], timeout=60, message="the request after the tool call")[0]
        assert request_text(second).count("note sent while busy") == 1, "injected once, after the tool call"
        wait_until(lambda: agent_state("gm", "rev") == "idle", timeout=60, message="rev idle after its turn")


def attention_pod(base_url: str) -> str:
    return (
        "name: ga\nagents:\n  w:\n    cli: gemini\n    model: gemini-2.5-flash\n    role: writes files\n    permissions: ask\n"
        f"    env: {{GOOGLE_GEMINI_BASE_URL: '{base_url}', GEMINI_API_KEY: dummy}}\n"
    )


def shell(command: str) -> dict[str, Any]:
    return {"call": "run_shell_command", "builtin": True, "arguments": {"command": command, "description": "make a file"}}


def test_gemini_confirmations_block_the_agent_and_podctl_says_to_answer_in_the_pane(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """Gemini CLI's ToolPermission notification blocks the agent with the tool and the command; it
    offers no way to answer from outside, so `approve` says where to answer and the pane's answer
    clears it. A 401 from its model server shows it failed with its error within seconds."""
    work = tmp_path / "ga"
    with FakeGemini() as fake:
        fake.script = [shell("touch approved.txt"), {"text": "Done."}]
        pods.up(write_pod(work, attention_pod(fake.base_url)))
        wait_for_pane("ga", "w", "Type your message", timeout=120)
        podctl("send", "ga", "--to", "w", "make the file")

        def blocked() -> dict[str, Any]:
            row = next(a for a in broker_call("ga", "status")["agents"] if a["name"] == "w")
            return row.get("blocked") or {} if row["state"] == "blocked" else {}

        found = wait_until(blocked, timeout=60, message="w blocked on its confirmation")
        assert (found["kind"], found["tool"], found["detail"], found["answerable"]) == (
            "permission", "Shell", "touch approved.txt", False)
        refused = podctl("approve", "ga", "w", check=False)
        assert refused.returncode == 1 and "no way to answer from outside: answer in its pane" in refused.stderr
        wait_for_pane("ga", "w", "Allow once")
        tmux_out("send-keys", "-t", "=ga:=w", "Enter")
        wait_until(lambda: (work / "approved.txt").exists(), timeout=30, message="the command answered in the pane")
        wait_until(lambda: agent_state("ga", "w") == "idle", timeout=60, message="w idle after its turn")

        fake.refusing = True
        podctl("send", "ga", "--to", "w", "and the last one")
        failed = wait_until(lambda: next(a for a in broker_call("ga", "status")["agents"] if a["name"] == "w").get("failed"),
                            timeout=20, message="w failed on the 401")
        assert "401" in failed["reason"], failed


def test_gemini_at_its_google_sign_in_is_blocked_never_idle_or_stopped(cli_env: CliHome, tmp_path: Path, pods: Pods) -> None:
    """No API key and no login: Gemini CLI waits for an OAuth authorization code. A live CLI waiting
    for input is blocked on a dialog, never `idle` nor `stopped` (issue 20: it read as stopped)."""
    pods.up(write_pod(tmp_path / "gl", "name: gl\nagents:\n  w: {cli: gemini, model: gemini-2.5-flash}\n"))

    def blocked() -> dict[str, Any]:
        row = next(a for a in broker_call("gl", "status")["agents"] if a["name"] == "w")
        return row.get("blocked") or {} if row["state"] == "blocked" else {}

    found = wait_until(blocked, timeout=90, message="w blocked at its sign-in")
    assert found["kind"] == "dialog" and "authorization code" in found["detail"]
    status = podctl("status", "gl", "--json").stdout
    assert '"state": "blocked"' in status and "stopped" not in status.split('"agents"', 1)[1].split('"routes"')[0]
