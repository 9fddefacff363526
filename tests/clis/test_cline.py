"""The real Cline CLI (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions
API (its openai-compatible provider, as `cline auth -b` configures it): podctl's Cline plugin
injects at turn start and after each tool call and reports busy/idle through the same hook command
as every CLI; woken by a typed nudge; answers through post_reply; a review asked of another agent."""

from __future__ import annotations

import json
import re
from pathlib import Path

from podctl.hooks.cline import ADAPTER

from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import agent_state, podctl, transcript, wait_for_pane, wait_until, write_pod
from .conftest import outside_writes
from .test_opencode import ask_id_in, last_user_text
from .test_qwen import REVIEWER

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}
COUNTED = ("input_tokens", "cached_input_tokens", "output_tokens", "requests")
"""Cline records no reasoning tokens apart (docs/usage.md)."""


def user_provider(base_url: str) -> None:
    """The user's own Cline provider settings, made as a user makes them (in the test's HOME)."""
    import subprocess

    subprocess.run(["cline", "auth", "-p", "openai", "-b", base_url, "-k", "dummy", "-m", "fake-model"],
                   check=True, capture_output=True, timeout=120)


def test_cline_agent_is_woken_injected_answers_and_gets_a_review(cli_env: Path, tmp_path: Path, pods, podctl_home: Path) -> None:
    with FakeChat(tool_prefix="podctl__") as fake:
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "fine, says cline"}},
            {"text": "Answered."},
            {"call": "list_agents", "arguments": {}},
            {"text": "Saw the note."},
            {"call": "ask", "arguments": {"to": "rev", "text": "Please review src/feature.py"}},
            {"call": "wait_for_reply", "arguments": lambda body: {
                "ask_id": int(re.findall(r"ask_id[\\\"': ]+(\d+)", request_text(body))[-1]), "timeout_ms": 60000}},
            {"text": "The reviewer approved."},
        ]
        user_provider(fake.base_url)
        before = outside_writes(cli_env, podctl_home)
        agent = "  cl:\n    cli: cline\n    model: fake-model\n    role: writes code\n"
        pods.up(write_pod(tmp_path / "cl", "name: cl\nagents:\n" + agent + REVIEWER))
        wait_for_pane("cl", "cl", ADAPTER.wake_ready_text, timeout=120)
        wait_until(lambda: agent_state("cl", "cl") == "idle", timeout=60, message="idle: its plugin reported it up")

        answer = podctl("send", "cl", "--to", "cl", "--ask", "How is the build?", "--wait", "90").stdout
        assert "reply from cl: fine, says cline" in answer
        first = fake.conversation()[0]
        assert {f"podctl__{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        assert ADAPTER.wake_text in request_text(first), "woken by the typed nudge"
        assert "You are agent `cl` of the podctl pod `cl`" in request_text(first), "the introduction at the first turn"
        assert "How is the build?" in request_text(first), "the ask was added to the turn at its start"
        wait_until(lambda: agent_state("cl", "cl") == "idle", timeout=30, message="idle after its turn")

        fake.hold()
        podctl("send", "cl", "--to", "cl", "--ask", "Anything else?")
        wait_until(lambda: agent_state("cl", "cl") == "busy", timeout=30, message="busy: woken again")
        podctl("send", "cl", "--to", "cl", "note sent while busy")
        fake.release()
        after = wait_until(lambda: fake.conversation()[3:4], timeout=60, message="the request after the tool call")[0]
        assert "Anything else?" in request_text(fake.conversation()[2])
        assert "note sent while busy" not in request_text(fake.conversation()[2])
        assert request_text(after).count("note sent while busy") == 1, "injected once, after the tool call"
        assert "You are agent" not in last_user_text(fake.conversation()[2]), "the introduction once"
        wait_until(lambda: agent_state("cl", "cl") == "idle", timeout=60, message="idle again")

        podctl("send", "cl", "--to", "cl", "Get src/feature.py reviewed by rev.")
        wait_until(lambda: any("LGTM from rev: Please review src/feature.py" in request_text(r)
                               for r in fake.conversation()[5:]), timeout=90, message="the review in cl's next request")
        history = transcript("cl")
        assert "cl → user reply to #" in history and "cl → rev ask #" in history and "rev → cl reply to #" in history

        def usage_matches() -> bool:
            used = json.loads(podctl("usage", "cl", "--json").stdout)["agents"]["cl"]
            reported = fake.reported()
            return {k: used[k] for k in COUNTED} == {k: reported[k] for k in COUNTED}

        wait_until(usage_matches, timeout=30, message=f"podctl usage to equal what the fake reported: {fake.reported()}")
        podctl("down", "cl")
        written = outside_writes(cli_env, podctl_home) - before
        assert not {w for w in written if w.startswith("~/.cline")}, written


def test_cline_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    """Nothing in podctl names Cline: the registry gives it to `add`, the templates and `doctor`."""
    pod_file = write_pod(tmp_path / "t", "name: t\nextends: review-pod\nvars: {writer_cli: cline}\n")
    assert podctl("validate", str(pod_file)).returncode == 0
    podctl("add", str(pod_file), "cline", "--name", "helper")
    assert "helper:\n    cli: cline" in pod_file.read_text()
    doctor = json.loads(podctl("doctor", "--json", check=False).stdout)
    row = next(r for r in doctor if "cline" in json.dumps(r))
    assert "3.0.65" in json.dumps(row)
