"""The real Qwen Code (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions
API: woken through its input file, messages injected at turn start and after a tool call, answers
through post_reply, and a review asked of another agent."""

from __future__ import annotations

import json
import re
from pathlib import Path

from podctl.hooks.qwen import ADAPTER, INPUT_FILE

from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import agent_state, podctl, status_of, transcript, wait_for_pane, wait_until, write_pod
from .conftest import outside_writes

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def qwen_agent(name: str, base_url: str) -> str:
    return (
        f"  {name}:\n    cli: qwen\n    model: fake-model\n    role: writes code\n"
        f"    env: {{OPENAI_BASE_URL: '{base_url}', OPENAI_API_KEY: dummy}}\n"
    )


REVIEWER = "  rev:\n    cli: script\n    role: reviews code\n    script: {replies: 'LGTM from {agent}: {text}'}\n"


def last_user_text(body: dict) -> str:
    last = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]
    return json.dumps(last.get("content"), ensure_ascii=False)


def ask_id_in(body: dict, asker: str = "user") -> int:
    return int(re.findall(rf"ask #(\d+) from {asker}", request_text(body))[-1])


def test_qwen_agent_is_woken_injected_answers_and_gets_a_review(
    cli_env: Path, tmp_path: Path, pods, podctl_home: Path
) -> None:
    with FakeChat(tool_prefix="mcp__podctl__") as fake:
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "fine, says qwen"}},
            {"text": "Answered."},
            {"call": "list_agents", "arguments": {}},
            {"text": "Saw the note."},
            {"call": "ask", "arguments": {"to": "rev", "text": "Please review src/feature.py"}},
            {"call": "wait_for_reply", "arguments": lambda body: {
                "ask_id": int(re.findall(r"ask_id[\\\"': ]+(\d+)", request_text(body))[-1]), "timeout_ms": 60000}},
            {"text": "The reviewer approved."},
        ]
        pods.up(write_pod(tmp_path / "qw", "name: qw\nagents:\n" + qwen_agent("qw", fake.base_url) + REVIEWER))
        wait_for_pane("qw", "qw", ADAPTER.wake_ready_text, timeout=120)

        answer = podctl("send", "qw", "--to", "qw", "--ask", "How is the build?", "--wait", "90").stdout
        assert "reply from qw: fine, says qwen" in answer
        first = fake.conversation()[0]
        assert {f"mcp__podctl__{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        assert "ask_user_question" not in tool_names(first), "no dialog can open in an unattended pane"
        assert "You are agent `qw` of the podctl pod `qw`" in request_text(first), "the session start hook's context"
        assert ADAPTER.wake_text in last_user_text(first) and "How is the build?" in last_user_text(first)
        inputs = (podctl_home / "qw" / "agents" / "qw" / INPUT_FILE).read_text()
        assert json.loads(inputs.splitlines()[0]) == {"type": "submit", "text": ADAPTER.wake_text}, "woken through its input file"
        assert next(a for a in status_of("qw")["agents"] if a["name"] == "qw")["last_wake"] in ("sent", "answered")
        wait_until(lambda: agent_state("qw", "qw") == "idle", timeout=30, message="idle after its turn")

        fake.hold()
        podctl("send", "qw", "--to", "qw", "--ask", "Anything else?")
        wait_until(lambda: agent_state("qw", "qw") == "busy", timeout=30, message="busy: woken again")
        podctl("send", "qw", "--to", "qw", "note sent while busy")
        fake.release()
        after = wait_until(lambda: fake.conversation()[3:4], timeout=60, message="the request after the tool call")[0]
        assert "Anything else?" in last_user_text(fake.conversation()[2])
        assert "note sent while busy" not in request_text(fake.conversation()[2])
        assert request_text(after).count("note sent while busy") == 1, "injected once, after the tool call"
        wait_until(lambda: agent_state("qw", "qw") == "idle", timeout=60, message="idle again")

        podctl("send", "qw", "--to", "qw", "Get src/feature.py reviewed by rev.")
        wait_until(lambda: any("LGTM from rev: Please review src/feature.py" in request_text(r)
                               for r in fake.conversation()[5:]), timeout=90, message="the review in qw's next request")
        history = transcript("qw")
        assert "qw → user reply to #" in history and "qw → rev ask #" in history and "rev → qw reply to #" in history

        def usage_matches() -> bool:
            used = json.loads(podctl("usage", "qw", "--json").stdout)["agents"]["qw"]
            return {k: used[k] for k in fake.reported()} == fake.reported()

        wait_until(usage_matches, timeout=30, message=f"podctl usage to equal what the fake reported: {fake.reported()}")
        podctl("down", "qw")
        assert not outside_writes(cli_env, podctl_home), outside_writes(cli_env, podctl_home)


def test_qwen_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    """Nothing in podctl names Qwen Code: the registry gives it to `add`, the templates and `doctor`."""
    pod_file = write_pod(tmp_path / "t", "name: t\nextends: review-pod\nvars: {writer_cli: qwen}\n")
    assert podctl("validate", str(pod_file)).returncode == 0
    podctl("add", str(pod_file), "qwen", "--name", "helper")
    assert "helper:\n    cli: qwen" in pod_file.read_text()
    doctor = json.loads(podctl("doctor", "--json", check=False).stdout)
    row = next(r for r in doctor if "qwen" in json.dumps(r))
    assert "0.24.4" in json.dumps(row)
