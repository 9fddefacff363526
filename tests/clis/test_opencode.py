"""The real OpenCode (pinned in tests/clis/package.json) in a pod, against a fake Chat Completions API:
its plugin injects and reports busy/idle through the same hook command as every CLI, and wakes it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from podctl.hooks.opencode import ADAPTER

from ..conftest import Pods
from ..fakes.openai_chat import FakeChat, request_text, tool_names
from ..fakes.openai_responses import FakeResponses
from ..fakes.openai_responses import request_text as responses_text
from ..helpers import agent_state, broker_call, pane_text, podctl, transcript, wait_for_pane, wait_until, write_pod
from . import flow
from .conftest import CliHome

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}
INTRO = "You are agent `oc` of the podctl pod `oc`"


def opencode_agent(name: str, base_url: str, cli: str = "opencode", env: str = "OPENCODE") -> str:
    """An agent of OpenCode, or of a fork with its config (`cli: kilo`, `env: KILO`), on the fake."""
    provider = {
        "enabled_providers": ["fake"], "small_model": "fake/fake-model", "permission": {"bash": "allow"},
        "provider": {"fake": {"npm": "@ai-sdk/openai-compatible", "name": "Fake",
                              "options": {"baseURL": base_url, "apiKey": "dummy"},
                              "models": {"fake-model": {"name": "Fake", "tool_call": True,
                                                        "limit": {"context": 128000, "output": 4096}}}}},
    }
    return (
        f"  {name}:\n    cli: {cli}\n    model: fake/fake-model\n    role: answers questions\n"
        f"    env: {{{env}_CONFIG_CONTENT: '{json.dumps(provider)}', {env}_DISABLE_MODELS_FETCH: '1'}}\n"
    )


def last_user_text(body: dict[str, Any]) -> str:
    """What the newest user message of a request says."""
    last = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]
    return json.dumps(last.get("content"), ensure_ascii=False)


def ask_id_in(body: dict[str, Any], asker: str = "user") -> int:
    return int(re.findall(rf"ask #(\d+) from {asker}", request_text(body))[-1])


def test_opencode_agent_is_woken_injected_and_answers_through_the_tools(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    with FakeChat() as fake:
        fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": "fine, says opencode"}},
            {"text": "Answered."},
            {"call": "list_agents", "arguments": {}},
            {"text": "Saw the note."},
            *flow.probe_steps("bash", {"command": flow.PROBE, "description": "print the cache and data folders"}),
        ]
        pod_file = write_pod(tmp_path / "oc", "name: oc\nagents:\n" + opencode_agent("oc", fake.base_url))
        pods.up(pod_file)
        wait_for_pane("oc", "oc", ADAPTER.wake_ready_text, timeout=120)

        answer = podctl("send", "oc", "--to", "oc", "--ask", "How is the build?", "--wait", "90").stdout
        assert "reply from oc: fine, says opencode" in answer
        first = fake.conversation()[0]
        assert {f"podctl_{t}" for t in TOOLS} <= tool_names(first), tool_names(first)
        assert "question" not in tool_names(first), "no dialog can open in an unattended pane"
        assert ADAPTER.wake_text in request_text(first), "no session yet: the wake was typed"
        assert "How is the build?" in request_text(first), "the ask was added to the user's message at turn start"
        assert INTRO in request_text(first) and "Your role: answers questions" in request_text(first), (
            "the session start's intro (its role, its team) reaches the model with the first turn"
        )
        wait_until(lambda: agent_state("oc", "oc") == "idle", timeout=30, message="idle after its turn")

        fake.hold()
        podctl("send", "oc", "--to", "oc", "--ask", "Anything else?")
        wait_until(lambda: agent_state("oc", "oc") == "busy", timeout=30, message="busy: woken by its plugin")
        podctl("send", "oc", "--to", "oc", "note sent while busy")
        fake.release()
        after = wait_until(lambda: fake.conversation()[3:4], timeout=60, message="the request after the tool call")[0]
        woken = fake.conversation()[2]
        assert ADAPTER.wake_text not in last_user_text(woken), "the plugin woke it: nothing was typed"
        assert "Anything else?" in last_user_text(woken)
        assert request_text(after).count("note sent while busy") == 1, "injected once, after the tool call"
        assert request_text(after).count(INTRO) == 1, "the intro is given once"
        wait_until(lambda: agent_state("oc", "oc") == "idle", timeout=60, message="idle again")
        assert "oc → user reply to #" in transcript("oc")
        flow.commands_get_the_users_folders("oc", "oc", tmp_path / "oc")

        def usage_matches() -> bool:
            """OpenCode keeps usage in its database: each model request of the conversation counted once."""
            used = json.loads(podctl("usage", "oc", "--json").stdout)["agents"]["oc"]
            return {k: used[k] for k in fake.reported()} == fake.reported()

        wait_until(usage_matches, timeout=30, message=f"podctl usage to equal what the fake reported: {fake.reported()}")
        podctl("down", "oc")
        assert not cli_env.written(), "nothing in the user's home after a first session"

        pod_file.write_text(pod_file.read_text().replace("role: answers questions", "role: reviews the build"))
        pods.up(pod_file)
        wait_for_pane("oc", "oc", ADAPTER.wake_ready_text, timeout=120)
        seen = len(fake.conversation())
        podctl("send", "oc", "--to", "oc", "Back again.")
        [back] = wait_until(lambda: fake.conversation()[seen:seen + 1], timeout=90, message="its next session's first request")
        assert "Back again." in request_text(back) and "Your role: reviews the build" in request_text(back)
        assert "Your role in pod oc changed. Your role is now:\\nreviews the build" in request_text(back), (
            "a role changed while the pod was down is told"
        )


def test_a_codex_agent_asks_an_opencode_agent_and_gets_its_answer(cli_env: CliHome, tmp_path: Path, pods: Pods) -> None:
    with FakeChat() as oc_fake, FakeResponses() as codex_fake:
        oc_fake.script = [
            {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body, "lead"), "text": "42, from opencode"}},
            {"text": "Answered the lead."},
        ]
        codex_fake.script = [
            {"call": "ask", "arguments": {"to": "oc", "text": "What is the answer?"}},
            {"call": "wait_for_reply", "arguments": lambda body: {
                "ask_id": int(re.findall(r"ask_id[\\\"': ]+(\d+)", responses_text(body))[-1]), "timeout_ms": 120000}},
            {"text": "Got it."},
        ]
        provider = (f'model_providers.fake={{name="fake", base_url="{codex_fake.base_url}", wire_api="responses",'
                    ' env_key="FAKE_OPENAI_API_KEY"}')
        lead = (
            "  lead:\n    cli: codex\n    model: gpt-test-fake\n"
            f"    args: ['-c', 'model_provider=fake', '-c', {json.dumps(provider)}]\n"
            "    env: {FAKE_OPENAI_API_KEY: dummy}\n"
        )
        pods.up(write_pod(tmp_path / "mix", "name: mix\nagents:\n" + lead + opencode_agent("oc", oc_fake.base_url)))
        wait_for_pane("mix", "oc", ADAPTER.wake_ready_text, timeout=120)
        wait_for_pane("mix", "lead", "Ask Codex", timeout=120)
        podctl("send", "mix", "--to", "lead", "Ask oc for the answer.")
        wait_until(lambda: any("42, from opencode" in responses_text(r) for r in codex_fake.conversation()[1:]),
                   timeout=150, message="the lead's model to receive opencode's answer")


def test_opencode_is_a_cli_like_any_other_for_add_templates_and_doctor(tmp_path: Path) -> None:
    """Nothing in podctl names OpenCode: the registry gives it to `add`, the templates and `doctor`."""
    pod_file = write_pod(tmp_path / "t", "name: t\nextends: review-pod\nvars: {writer_cli: opencode}\n")
    assert podctl("validate", str(pod_file)).returncode == 0
    podctl("add", str(pod_file), "opencode", "--name", "helper")
    assert "helper:\n    cli: opencode" in pod_file.read_text()
    doctor = json.loads(podctl("doctor", "--json", check=False).stdout)
    row = next(r for r in doctor if "opencode" in json.dumps(r))
    assert "1.18.33" in json.dumps(row)


def test_opencode_permission_requests_block_the_agent_and_are_answered_without_attaching(
    cli_env: CliHome, tmp_path: Path, pods: Pods
) -> None:
    """One OpenCode agent under `permissions: ask`: a bash call blocks it (its plugin's
    permission.asked) with the tool and the command; `approve` runs it through OpenCode's reply
    API; `deny` does not, with the reason for the model; a routed approval is answered by a script
    agent; a 401 from its model server shows it failed (session.error) within seconds."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.pod import file_digest, wait_applied

    def bash(command: str) -> dict[str, Any]:
        return {"call": "bash", "builtin": True, "arguments": {"command": command, "description": "make a file"}}

    def blocked_on(detail: str) -> dict[str, Any]:
        row = next(a for a in broker_call("oa", "status")["agents"] if a["name"] == "w")
        found = row.get("blocked") or {}
        return found if row["state"] == "blocked" and found.get("detail") == detail else {}

    work = tmp_path / "oa"
    with FakeChat() as fake:
        fake.script = [bash("touch approved.txt"), bash("touch denied.txt"), {"text": "Done."},
                       bash("touch routed.txt"), {"text": "Done again."}]
        agent = opencode_agent("w", fake.base_url) + "    permissions: ask\n"
        guard = "  guard:\n    cli: script\n    script: {replies: 'allow: fine by {agent}'}\n"
        pod_file = write_pod(work, "name: oa\nagents:\n" + agent + guard)
        pods.up(pod_file)
        wait_for_pane("oa", "w", ADAPTER.wake_ready_text, timeout=120)
        podctl("send", "oa", "--to", "w", "make the files")

        try:
            found = wait_until(lambda: blocked_on("touch approved.txt"), timeout=60, message="w blocked on bash")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{pane_text('oa', 'w')}\n{podctl('status', 'oa').stdout}") from None
        assert (found["kind"], found["tool"], found["answerable"]) == ("permission", "bash", True)
        assert podctl("approve", "oa", "w").stdout.strip() == "approved w: bash  touch approved.txt"
        wait_until(lambda: (work / "approved.txt").exists(), timeout=30, message="the approved command to run")

        wait_until(lambda: blocked_on("touch denied.txt"), timeout=60, message="w blocked again")
        podctl("deny", "oa", "w", "--reason", "NOT-IN-THIS-FOLDER-7")
        wait_until(lambda: any("NOT-IN-THIS-FOLDER-7" in request_text(r) for r in fake.conversation()), timeout=60,
                   message="the model's next request to carry the reason")
        assert not (work / "denied.txt").exists()
        wait_until(lambda: agent_state("oa", "w") == "idle", timeout=60, message="w idle after its turn")

        text = pod_file.read_text() + "approvals: [{agents: [w], to: guard, timeout: 1m, then: deny}]\n"
        pod_file.write_text(text)
        wait_applied(PodPaths.of("oa"), pod_file, file_digest(text))
        podctl("send", "oa", "--to", "w", "one more file")
        wait_until(lambda: (work / "routed.txt").exists(), timeout=90, message="the guard's allow to run the command")
        assert "w: bash  touch routed.txt: allowed by guard" in transcript("oa")

        wait_until(lambda: agent_state("oa", "w") == "idle", timeout=60, message="w idle again")
        fake.refusing = True
        podctl("send", "oa", "--to", "w", "and the last one")
        failed = wait_until(lambda: next(a for a in broker_call("oa", "status")["agents"] if a["name"] == "w").get("failed"),
                            timeout=20, message="w failed on the 401")
        assert "401" in failed["reason"] or "API key" in failed["reason"], failed
