"""The real Codex CLI (pinned in tests/clis/package.json) in a pod, against a fake Responses API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from podctl.hooks.codex import ADAPTER

from ..conftest import Pods
from ..fakes.openai_responses import FakeResponses, request_text, tool_names
from ..helpers import agent_state, broker_call, podctl, transcript, wait_for_pane, wait_until, write_pod
from .conftest import CliHome

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def pod_text(base_url: str) -> str:
    provider = f'model_providers.fake={{name="fake", base_url="{base_url}", wire_api="responses", env_key="FAKE_OPENAI_API_KEY"}}'
    return (
        "name: cx\nagents:\n  rev:\n    cli: codex\n    model: gpt-test-fake\n    role: reviews diffs\n"
        f"    args: ['-c', 'model_provider=fake', '-c', {json.dumps(provider)}]\n"
        "    env: {FAKE_OPENAI_API_KEY: dummy}\n"
        "  boss: {cli: script}\n"
    )


def ask_id_in(body: dict[str, Any]) -> int:
    return int(re.findall(r"ask #(\d+) from user", request_text(body))[-1])


def test_codex_agent_is_woken_injected_and_answers_through_the_tools(
    cli_env: CliHome, tmp_path: Path, pods: Pods, podctl_home: Path
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
        assert (codex_home / "config.toml").read_text().count("trusted_hash") == 6

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


def attention_pod(base_url: str, approvals: str = "") -> str:
    provider = f'model_providers.fake={{name="fake", base_url="{base_url}", wire_api="responses", env_key="FAKE_OPENAI_API_KEY"}}'
    return (
        "name: xa\nagents:\n  w:\n    cli: codex\n    model: gpt-test-fake\n    role: writes files\n    permissions: ask\n"
        f"    args: ['-c', 'model_provider=fake', '-c', {json.dumps(provider)}]\n"
        "    env: {FAKE_OPENAI_API_KEY: dummy}\n"
        "  guard:\n    cli: script\n    script: {replies: 'allow: fine by {agent}'}\n"
        f"{approvals}"
    )


def escalated(command: str) -> dict[str, Any]:
    """Codex's own shell tool, asking to run outside its sandbox: an approval under `permissions: ask`."""
    return {"call": "exec_command", "builtin": True,
            "arguments": {"cmd": command, "sandbox_permissions": "require_escalated", "justification": "make a file"}}


def blocked_on(pod: str, agent: str, detail: str) -> dict[str, Any]:
    row = next(a for a in broker_call(pod, "status")["agents"] if a["name"] == agent)
    blocked = row.get("blocked") or {}
    return blocked if row["state"] == "blocked" and blocked.get("detail") == detail else {}


def test_codex_permission_requests_block_the_agent_and_are_answered_without_attaching(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """One Codex agent under `permissions: ask`: an escalated command blocks it with the tool and the
    command (its PermissionRequest hook, trusted like the others); `approve` runs it; `deny` does not,
    and the model reads the reason; a routed approval is answered by a script agent; a 401 from its
    model server shows it failed within seconds."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.pod import file_digest, wait_applied

    work = tmp_path / "xa"
    with FakeResponses() as fake:
        fake.script = [escalated("touch approved.txt"), escalated("touch denied.txt"), {"text": "Done."},
                       escalated("touch routed.txt"), {"text": "Done again."}]
        pod_file = write_pod(work, attention_pod(fake.base_url))
        pods.up(pod_file)
        wait_for_pane("xa", "w", "Ask Codex", timeout=120)
        podctl("send", "xa", "--to", "w", "make the files")

        blocked = wait_until(lambda: blocked_on("xa", "w", "touch approved.txt"), timeout=60, message="w blocked")
        assert (blocked["kind"], blocked["tool"], blocked["answerable"]) == ("permission", "Bash", True)
        assert podctl("approve", "xa", "w").stdout.strip() == "approved w: Bash  touch approved.txt"
        wait_until(lambda: (work / "approved.txt").exists(), timeout=30, message="the approved command to run")

        wait_until(lambda: blocked_on("xa", "w", "touch denied.txt"), timeout=60, message="w blocked again")
        podctl("deny", "xa", "w", "--reason", "NOT-IN-THIS-FOLDER-7")
        wait_until(lambda: any("NOT-IN-THIS-FOLDER-7" in request_text(r) for r in fake.conversation()), timeout=60,
                   message="the model's next request to carry the reason")
        assert not (work / "denied.txt").exists()
        wait_until(lambda: agent_state("xa", "w") == "idle", timeout=60, message="w idle after its turn")

        text = attention_pod(fake.base_url, "approvals: [{agents: [w], to: guard, timeout: 1m, then: deny}]\n")
        pod_file.write_text(text)
        wait_applied(PodPaths.of("xa"), pod_file, file_digest(text))
        podctl("send", "xa", "--to", "w", "one more file")
        wait_until(lambda: (work / "routed.txt").exists(), timeout=90, message="the guard's allow to run the command")
        assert "w: Bash  touch routed.txt: allowed by guard" in transcript("xa")

        wait_until(lambda: agent_state("xa", "w") == "idle", timeout=60, message="w idle again")
        fake.refusing = True
        podctl("send", "xa", "--to", "w", "and the last one")
        failed = wait_until(lambda: next(a for a in broker_call("xa", "status")["agents"] if a["name"] == "w").get("failed"),
                            timeout=20, message="w failed on the 401")
        assert "401" in failed["reason"], failed


def test_codex_at_its_login_screen_is_blocked_not_idle(cli_env: CliHome, tmp_path: Path, pods: Pods) -> None:
    """No provider and no login: Codex shows its sign-in screen. It waits for a person: blocked on a
    dialog, not `idle` (issue 19)."""
    pods.up(write_pod(tmp_path / "cl", "name: cl\nagents:\n  w: {cli: codex}\n"))

    def blocked() -> dict[str, Any]:
        row = next(a for a in broker_call("cl", "status")["agents"] if a["name"] == "w")
        return row.get("blocked") or {} if row["state"] == "blocked" else {}

    found = wait_until(blocked, timeout=90, message="w blocked at its login screen")
    assert found["kind"] == "dialog" and "login" in found["detail"]
