"""The real Kilo CLI (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions
API: OpenCode's plugin, under Kilo's names, injects and reports busy/idle through the same hook
command as every CLI, and wakes it; a review asked of another agent."""

from __future__ import annotations

import json
import re
from pathlib import Path

from podctl.hooks.kilo import ADAPTER

from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import agent_state, podctl, transcript, wait_for_pane, wait_until, write_pod
from .conftest import outside_writes
from .test_opencode import ask_id_in, last_user_text
from .test_qwen import REVIEWER

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def kilo_agent(name: str, base_url: str) -> str:
    provider = {
        "enabled_providers": ["fake"], "small_model": "fake/fake-model",
        "provider": {"fake": {"npm": "@ai-sdk/openai-compatible", "name": "Fake",
                              "options": {"baseURL": base_url, "apiKey": "dummy"},
                              "models": {"fake-model": {"name": "Fake", "tool_call": True,
                                                        "limit": {"context": 128000, "output": 4096}}}}},
    }
    return (
        f"  {name}:\n    cli: kilo\n    model: fake/fake-model\n    role: writes code\n"
        f"    env: {{KILO_CONFIG_CONTENT: '{json.dumps(provider)}', KILO_DISABLE_MODELS_FETCH: '1'}}\n"
    )


def test_kilo_agent_is_woken_injected_answers_and_gets_a_review(cli_env: Path, tmp_path: Path, pods, podctl_home: Path) -> None:
    with FakeChat() as fake:
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "fine, says kilo"}},
            {"text": "Answered."},
            {"call": "list_agents", "arguments": {}},
            {"text": "Saw the note."},
            {"call": "ask", "arguments": {"to": "rev", "text": "Please review src/feature.py"}},
            {"call": "wait_for_reply", "arguments": lambda body: {
                "ask_id": int(re.findall(r"ask_id[\\\"': ]+(\d+)", request_text(body))[-1]), "timeout_ms": 60000}},
            {"text": "The reviewer approved."},
        ]
        pods.up(write_pod(tmp_path / "ki", "name: ki\nagents:\n" + kilo_agent("ki", fake.base_url) + REVIEWER))
        wait_for_pane("ki", "ki", ADAPTER.wake_ready_text, timeout=120)

        answer = podctl("send", "ki", "--to", "ki", "--ask", "How is the build?", "--wait", "90").stdout
        assert "reply from ki: fine, says kilo" in answer
        first = fake.conversation()[0]
        assert {f"podctl_{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        assert not {"question", "suggest"} & tool_names(first), "no tool that waits for a person"
        assert "How is the build?" in request_text(first), "the ask was added to the user's message at turn start"
        wait_until(lambda: agent_state("ki", "ki") == "idle", timeout=30, message="idle after its turn")

        fake.hold()
        podctl("send", "ki", "--to", "ki", "--ask", "Anything else?")
        wait_until(lambda: agent_state("ki", "ki") == "busy", timeout=30, message="busy: woken by its plugin")
        podctl("send", "ki", "--to", "ki", "note sent while busy")
        fake.release()
        after = wait_until(lambda: fake.conversation()[3:4], timeout=60, message="the request after the tool call")[0]
        woken = fake.conversation()[2]
        assert ADAPTER.wake_text not in last_user_text(woken), "the plugin woke it: nothing was typed"
        assert "Anything else?" in last_user_text(woken)
        assert request_text(after).count("note sent while busy") == 1, "injected once, after the tool call"
        wait_until(lambda: agent_state("ki", "ki") == "idle", timeout=60, message="idle again")

        podctl("send", "ki", "--to", "ki", "Get src/feature.py reviewed by rev.")
        wait_until(lambda: any("LGTM from rev: Please review src/feature.py" in request_text(r)
                               for r in fake.conversation()[5:]), timeout=90, message="the review in ki's next request")
        history = transcript("ki")
        assert "ki → user reply to #" in history and "ki → rev ask #" in history and "rev → ki reply to #" in history

        def usage_matches() -> bool:
            """Kilo keeps usage in its database, as OpenCode does: each request counted once."""
            used = json.loads(podctl("usage", "ki", "--json").stdout)["agents"]["ki"]
            return {k: used[k] for k in fake.reported()} == fake.reported()

        wait_until(usage_matches, timeout=30, message=f"podctl usage to equal what the fake reported: {fake.reported()}")
        podctl("down", "ki")
        written = outside_writes(cli_env, podctl_home)
        assert not {w for w in written if w.startswith(("~/.config/kilo", "~/.local/share/kilo", "~/.local/state/kilo"))}, written


def test_kilo_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    """Nothing in podctl names Kilo: the registry gives it to `add`, the templates and `doctor`."""
    pod_file = write_pod(tmp_path / "t", "name: t\nextends: review-pod\nvars: {writer_cli: kilo}\n")
    assert podctl("validate", str(pod_file)).returncode == 0
    podctl("add", str(pod_file), "kilo", "--name", "helper")
    assert "helper:\n    cli: kilo" in pod_file.read_text()
    doctor = json.loads(podctl("doctor", "--json", check=False).stdout)
    row = next(r for r in doctor if "kilo" in json.dumps(r))
    assert "7.7.7" in json.dumps(row)
