"""The real GitHub Copilot CLI (pinned in tests/clis/package.json) in a pod, offline against a fake
Chat Completions API (its BYOK provider, `COPILOT_OFFLINE`): woken by a typed nudge, messages
injected at turn start and after a tool call, answers through post_reply, and a cross-review with
a real Qwen Code agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podctl.hooks.copilot import ADAPTER

from ..conftest import Pods
from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..helpers import agent_state, podctl, tmux_out, transcript, wait_for_pane, wait_until, write_pod
from . import flow
from .conftest import CliHome
from .test_qwen import qwen_agent


def copilot_agent(name: str, base_url: str, args: str = "    args: ['--allow-all-tools']\n") -> str:
    """A Copilot CLI agent offline against `base_url`; `args=""` for one whose `permissions` sets its mode."""
    return (
        f"  {name}:\n    cli: copilot\n    model: fake-model\n    role: writes code\n{args}"
        f"    env: {{COPILOT_OFFLINE: 'true', COPILOT_PROVIDER_BASE_URL: '{base_url}', COPILOT_PROVIDER_API_KEY: dummy}}\n"
    )


def test_copilot_agent_is_woken_injected_answers_and_reviews_with_a_qwen_agent(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    with FakeChat(tool_prefix="podctl-") as fake, FakeChat(tool_prefix="mcp__podctl__") as qwen_fake:
        fake.script = flow.agent_script("cp", "qw") + flow.probe_steps(
            "bash", {"command": flow.PROBE, "description": "print the cache and data folders"})
        qwen_fake.script = [
            {"call": "post_reply", "arguments": lambda body: {
                "ask_id": flow.ask_id_in(body, "cp"), "text": "LGTM from qwen: the loop bound is right"}},
            {"text": "Reviewed."},
        ]
        pod = "name: cp\nagents:\n" + copilot_agent("cp", fake.base_url) + qwen_agent("qw", qwen_fake.base_url)
        pods.up(write_pod(tmp_path / "cp", pod))
        wait_for_pane("cp", "cp", ADAPTER.wake_ready_text, timeout=120)

        flow.answers_an_ask("cp", "cp")
        first = fake.conversation()[0]
        assert {f"podctl-{t}" for t in flow.TOOLS} <= tool_names(first), tool_names(first)
        assert "ask_user" not in tool_names(first), "no question dialog can open in an unattended pane"
        assert "You are agent `cp` of the podctl pod `cp`" in request_text(first), "the introduction at the first prompt"
        assert ADAPTER.wake_text in flow.last_user_text(first), "woken by the typed nudge"
        assert "How is the build?" in request_text(first), "the ask came with the introduction, at the first prompt"

        flow.tell_after_a_tool_call("cp", "cp", fake)
        flow.gets_a_review("cp", "cp", fake, "qw", "LGTM from qwen: the loop bound is right")
        assert any("Please review src/feature.py" in request_text(r) for r in qwen_fake.conversation())
        flow.commands_get_the_users_folders("cp", "cp", tmp_path / "cp")
        flow.usage_matches("cp", {"cp": fake, "qw": qwen_fake})


def test_copilot_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    flow.is_a_cli_like_any_other(tmp_path, "copilot", "1.0.102")


def shell(command: str) -> dict[str, Any]:
    """Copilot CLI's own shell tool: it asks under `permissions: ask`."""
    return {"call": "bash", "builtin": True, "arguments": {"command": command, "description": "make a file"}}


def test_copilot_permission_prompts_block_the_agent_and_podctl_says_to_answer_in_the_pane(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """A Copilot CLI agent under `permissions: ask`: its permission dialog blocks the agent with the
    tool and the command (its notification hook); no hook can answer it for a person, so `approve`
    says where to answer and the pane's answer runs it and clears the state. A 401 from its model
    server shows it failed with its words within seconds."""
    work = tmp_path / "ca"
    with FakeChat(tool_prefix="podctl-") as fake:
        fake.script = [shell("touch approved.txt"), {"text": "Done."}]
        pods.up(write_pod(work, "name: ca\nagents:\n" + copilot_agent("w", fake.base_url, args="") + "    permissions: ask\n"))
        wait_for_pane("ca", "w", ADAPTER.wake_ready_text, timeout=120)
        podctl("send", "ca", "--to", "w", "make the file")

        found = wait_until(lambda: flow.blocked_on("ca", "w", "touch approved.txt"), timeout=60,
                           message="w blocked on its permission dialog")
        assert (found["kind"], found["tool"], found["answerable"]) == ("permission", "Run command", False), found
        refused = podctl("approve", "ca", "w", check=False)
        assert refused.returncode == 1 and "answer in its pane" in refused.stderr, refused.stderr
        wait_for_pane("ca", "w", "enter to select")
        tmux_out("send-keys", "-t", "=ca:=w", "Enter")
        wait_until(lambda: (work / "approved.txt").exists(), timeout=30, message="the command answered in the pane")
        wait_until(lambda: agent_state("ca", "w") == "idle", timeout=60, message="w idle after its turn")

        failed = flow.fails_on_a_401("ca", "w", fake)
        assert "401" in failed["reason"], failed


def test_copilot_under_permissions_edits_writes_files_unasked_and_commands_still_ask(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """`permissions: edits` (`--allow-tool write`): its file tool writes without a dialog, and a shell
    command still asks (the mode does not widen to commands)."""
    work = tmp_path / "ce"
    with FakeChat(tool_prefix="podctl-") as fake:
        create = {"call": "create", "builtin": True, "arguments": {"path": str(work / "notes.txt"), "file_text": "hi\n"}}
        fake.script = [create, shell("touch asked.txt"), {"text": "Done."}]
        pods.up(write_pod(work, "name: ce\nagents:\n" + copilot_agent("w", fake.base_url, args="") + "    permissions: edits\n"))
        wait_for_pane("ce", "w", ADAPTER.wake_ready_text, timeout=120)
        podctl("send", "ce", "--to", "w", "write the notes, then make the file")

        wait_until(lambda: flow.blocked_on("ce", "w", "touch asked.txt"), timeout=60, message="w blocked on the command")
        assert (work / "notes.txt").read_text() == "hi\n", "the edit ran without asking"
        wait_until(lambda: "w needs you: Run command  touch asked.txt" in transcript("ce"), timeout=10,
                   message="the blocked line in the transcript (written just after the state is shown)")
        assert "needs you" not in transcript("ce").replace("w needs you: Run command  touch asked.txt", ""), "one ask only"
        assert not (work / "asked.txt").exists()
