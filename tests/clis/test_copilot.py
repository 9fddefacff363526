"""The real GitHub Copilot CLI (pinned in tests/clis/package.json) in a pod, offline against a fake
Chat Completions API (its BYOK provider, `COPILOT_OFFLINE`): woken by a typed nudge, messages
injected at turn start and after a tool call, answers through post_reply, and a cross-review with
a real Qwen Code agent."""

from __future__ import annotations

import json
import re
from pathlib import Path

from podctl.hooks.copilot import ADAPTER

from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import agent_state, podctl, transcript, wait_for_pane, wait_until, write_pod
from .conftest import outside_writes
from .test_qwen import qwen_agent

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}
SHARED_CACHE = ("~/.cache/copilot", "~/.cache/Microsoft")
"""What Copilot CLI writes outside the agent's folder (docs/adapters.md): its unpacked package,
shared with the user's own runs, and the device id of its telemetry library."""


def copilot_agent(name: str, base_url: str) -> str:
    return (
        f"  {name}:\n    cli: copilot\n    model: fake-model\n    role: writes code\n"
        f"    env: {{COPILOT_OFFLINE: 'true', COPILOT_PROVIDER_BASE_URL: '{base_url}', COPILOT_PROVIDER_API_KEY: dummy}}\n"
    )


def last_user_text(body: dict) -> str:
    last = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]
    return json.dumps(last.get("content"), ensure_ascii=False)


def ask_id_in(body: dict, asker: str = "user") -> int:
    return int(re.findall(rf"ask #(\d+) from {asker}", request_text(body))[-1])


def test_copilot_agent_is_woken_injected_answers_and_reviews_with_a_qwen_agent(
    cli_env: Path, tmp_path: Path, pods, podctl_home: Path
) -> None:
    with FakeChat(tool_prefix="podctl-") as fake, FakeChat(tool_prefix="mcp__podctl__") as qwen_fake:
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "fine, says copilot"}},
            {"text": "Answered."},
            {"call": "list_agents", "arguments": {}},
            {"text": "Saw the note."},
            {"call": "ask", "arguments": {"to": "qw", "text": "Please review src/feature.py"}},
            {"call": "wait_for_reply", "arguments": lambda body: {
                "ask_id": int(re.findall(r"ask_id[\\\"': ]+(\d+)", request_text(body))[-1]), "timeout_ms": 60000}},
            {"text": "The reviewer approved."},
        ]
        qwen_fake.script = [
            {"call": "post_reply", "arguments": lambda body: {
                "ask_id": ask_id_in(body, "cp"), "text": "LGTM from qwen: the loop bound is right"}},
            {"text": "Reviewed."},
        ]
        pod = "name: cp\nagents:\n" + copilot_agent("cp", fake.base_url) + qwen_agent("qw", qwen_fake.base_url)
        pods.up(write_pod(tmp_path / "cp", pod))
        wait_for_pane("cp", "cp", ADAPTER.wake_ready_text, timeout=120)

        answer = podctl("send", "cp", "--to", "cp", "--ask", "How is the build?", "--wait", "90").stdout
        assert "reply from cp: fine, says copilot" in answer
        first = fake.conversation()[0]
        assert {f"podctl-{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        assert "ask_user" not in tool_names(first), "no question dialog can open in an unattended pane"
        assert "You are agent `cp` of the podctl pod `cp`" in request_text(first), "the introduction at the first prompt"
        assert ADAPTER.wake_text in last_user_text(first), "woken by the typed nudge"
        assert "How is the build?" in request_text(first), "the ask came with the introduction, at the first prompt"
        wait_until(lambda: agent_state("cp", "cp") == "idle", timeout=30, message="idle after its turn")

        fake.hold()
        podctl("send", "cp", "--to", "cp", "--ask", "Anything else?")
        wait_until(lambda: agent_state("cp", "cp") == "busy", timeout=30, message="busy: woken again")
        podctl("send", "cp", "--to", "cp", "note sent while busy")
        fake.release()
        after = wait_until(lambda: fake.conversation()[3:4], timeout=60, message="the request after the tool call")[0]
        assert "Anything else?" in last_user_text(fake.conversation()[2])
        assert "note sent while busy" not in request_text(fake.conversation()[2])
        assert request_text(after).count("note sent while busy") == 1, "injected once, after the tool call"
        wait_until(lambda: agent_state("cp", "cp") == "idle", timeout=60, message="idle again")

        podctl("send", "cp", "--to", "cp", "Get src/feature.py reviewed by qw.")
        wait_until(lambda: any("LGTM from qwen: the loop bound is right" in request_text(r)
                               for r in fake.conversation()[5:]), timeout=120, message="qwen's review in cp's next request")
        assert any("Please review src/feature.py" in request_text(r) for r in qwen_fake.conversation())
        history = transcript("cp")
        assert "cp → qw ask #" in history and "qw → cp reply to #" in history

        def usage_matches() -> bool:
            agents = json.loads(podctl("usage", "cp", "--json").stdout)["agents"]
            return all({k: agents[name][k] for k in f.reported()} == f.reported() for name, f in (("cp", fake), ("qw", qwen_fake)))

        wait_until(usage_matches, timeout=30, message=f"podctl usage to equal what the fakes reported: {fake.reported()}")
        podctl("down", "cp")
        written = outside_writes(cli_env, podctl_home)
        assert not {w for w in written if not w.startswith(SHARED_CACHE) and w != "~/.cache"}, written


def test_copilot_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    """Nothing in podctl names Copilot CLI: the registry gives it to `add`, the templates and `doctor`."""
    pod_file = write_pod(tmp_path / "t", "name: t\nextends: review-pod\nvars: {writer_cli: copilot}\n")
    assert podctl("validate", str(pod_file)).returncode == 0
    podctl("add", str(pod_file), "copilot", "--name", "helper")
    assert "helper:\n    cli: copilot" in pod_file.read_text()
    doctor = json.loads(podctl("doctor", "--json", check=False).stdout)
    row = next(r for r in doctor if "copilot" in json.dumps(r))
    assert "1.0.102" in json.dumps(row)
