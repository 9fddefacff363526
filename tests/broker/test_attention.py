"""Attention at the broker: agents that wait for a person (blocked) or cannot work (failed), their
hooks' facts, answers from podctl, the pane or an `always`, and what survives a broker restart.

The hooks are the real hook commands (python -I -S hooks/fast.py) of a real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podctl.broker.wire import BrokerError

from ..helpers import BrokerProcess, hook_argv, scaled, wait_until

BASH = {"tool_name": "Bash", "tool_input": {"command": "touch build/x", "description": "make x"}}


def held_hook(broker: BrokerProcess, agent: str, payload: dict[str, Any], hold_ms: int = 20_000) -> subprocess.Popen[str]:
    """Claude Code's PermissionRequest hook of `agent`, waiting up to `hold_ms` for podctl's answer."""
    proc = subprocess.Popen([*hook_argv(broker.state, agent, "claude", "PermissionRequest"), "--hold-ms", str(hold_ms)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"hook_event_name": "PermissionRequest", **payload}))
    proc.stdin.close()
    return proc


def hook(broker: BrokerProcess, agent: str, native: str, payload: dict[str, Any] | None = None) -> str:
    return subprocess.run(hook_argv(broker.state, agent, "claude", native), input=json.dumps(payload or {}),
                          capture_output=True, text=True, timeout=30).stdout


def agent(broker: BrokerProcess, name: str) -> dict[str, Any]:
    with broker.client("user") as user:
        return dict(next(a for a in user.call("status")["agents"] if a["name"] == name))


def output(proc: subprocess.Popen[str]) -> dict[str, Any] | None:
    """What the hook printed, once it exited (0, always)."""
    assert proc.stdout is not None
    proc.wait(timeout=scaled(30))
    out = proc.stdout.read()
    assert proc.returncode == 0
    return json.loads(out) if out.strip() else None


def test_a_permission_request_blocks_the_agent_with_tool_and_detail_and_approve_lets_it_run(broker: BrokerProcess) -> None:
    hook(broker, "bob", "UserPromptSubmit")
    proc = held_hook(broker, "bob", BASH)
    blocked = wait_until(lambda: agent(broker, "bob").get("blocked"), message="bob blocked")
    assert agent(broker, "bob")["state"] == "blocked"
    assert (blocked["kind"], blocked["tool"], blocked["detail"], blocked["answerable"]) == (
        "permission", "Bash", "touch build/x", True)
    with broker.client("user") as user:
        answer = user.call("approve", name="bob")
    assert (answer["decision"], answer["tool"], answer["detail"]) == ("allow", "Bash", "touch build/x")
    assert output(proc) == {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}
    assert agent(broker, "bob")["state"] == "busy" and "blocked" not in agent(broker, "bob")
    with broker.client("user") as user:
        said = [m["text"] for m in user.call("history")["messages"] if m["kind"] == "log"]
    assert "bob needs you: Bash  touch build/x" in said and "bob: Bash  touch build/x: allowed by user" in said


def test_deny_gives_the_model_the_reason_and_a_late_answer_is_told_it_was_answered(broker: BrokerProcess) -> None:
    proc = held_hook(broker, "bob", BASH)
    wait_until(lambda: agent(broker, "bob").get("blocked"), message="bob blocked")
    with broker.client("user") as user:
        user.call("deny", name="bob", reason="use the build/ folder of the worktree")
        printed = output(proc)
        assert printed is not None, "the hook printed its decision"
        decision = printed["hookSpecificOutput"]["decision"]
        assert decision["behavior"] == "deny" and "use the build/ folder of the worktree" in decision["message"]
        with pytest.raises(BrokerError) as late:
            user.call("approve", name="bob")
    assert late.value.code == "not_waiting" and "already answered: denied by user" in late.value.message


def test_the_pane_answering_first_releases_the_hook_and_podctl_says_so(broker: BrokerProcess) -> None:
    """Claude Code shows its own dialog while the hook waits: a person at the pane answers, the tool
    runs (PostToolUse of that very call), and the waiting hook ends at once with nothing to print."""
    proc = held_hook(broker, "bob", BASH)
    wait_until(lambda: agent(broker, "bob").get("blocked"), message="bob blocked")
    started = time.monotonic()
    hook(broker, "bob", "PostToolUse", {**BASH, "tool_response": {"stdout": ""}})
    assert output(proc) is None and time.monotonic() - started < scaled(5)
    assert agent(broker, "bob")["state"] == "busy"
    with broker.client("user") as user, pytest.raises(BrokerError) as late:
        user.call("approve", name="bob")
    assert "already answered: answered in its pane" in late.value.message


def test_another_tool_finishing_beside_it_leaves_the_request_open(broker: BrokerProcess) -> None:
    proc = held_hook(broker, "bob", BASH)
    wait_until(lambda: agent(broker, "bob").get("blocked"), message="bob blocked")
    hook(broker, "bob", "PostToolUse", {"tool_name": "Read", "tool_input": {"file_path": "README.md"}})
    assert agent(broker, "bob")["state"] == "blocked"
    with broker.client("user") as user:
        user.call("approve", name="bob")
    assert output(proc) is not None


def test_with_no_answer_in_time_the_hook_falls_back_to_the_clis_dialog_and_the_agent_stays_blocked(
    broker: BrokerProcess,
) -> None:
    started = time.monotonic()
    proc = held_hook(broker, "bob", BASH, hold_ms=1500)
    assert output(proc) is None
    assert time.monotonic() - started < scaled(1.5 + 2 + 1.5), "within its hold and the hook deadline"
    # The hook may give up a moment before the broker's own hold ends (a loaded machine): poll for it.
    def fallen_back() -> dict[str, Any] | None:
        blocked: dict[str, Any] = agent(broker, "bob")["blocked"]
        return blocked if blocked["answerable"] is False else None

    blocked = wait_until(fallen_back, timeout=5, message="the request no longer answerable from podctl")
    assert "answer there" in blocked["how"]
    with broker.client("user") as user, pytest.raises(BrokerError) as refused:
        user.call("approve", name="bob")
    assert refused.value.code == "cannot_answer" and "Bash  touch build/x" in refused.value.message


def test_always_is_remembered_for_the_same_tool_and_detail_only(broker: BrokerProcess) -> None:
    proc = held_hook(broker, "bob", BASH)
    wait_until(lambda: agent(broker, "bob").get("blocked"), message="bob blocked")
    with broker.client("user") as user:
        user.call("approve", name="bob", always=True)
    assert output(proc) is not None
    again = held_hook(broker, "bob", BASH)
    assert output(again) == {"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}}
    assert agent(broker, "bob")["state"] != "blocked"
    other = held_hook(broker, "bob", {"tool_name": "Bash", "tool_input": {"command": "rm -rf build"}}, hold_ms=1000)
    assert output(other) is None, "another command asks again"


def test_an_api_error_ends_the_turn_failed_with_the_clis_words_and_no_nudge_is_typed(broker: BrokerProcess) -> None:
    hook(broker, "bob", "UserPromptSubmit")
    hook(broker, "bob", "StopFailure", {"error": "authentication_failed",
                                        "last_assistant_message": "Not logged in · Please run /login"})
    bob = agent(broker, "bob")
    assert bob["state"] == "failed" and bob["failed"]["reason"] == "Not logged in · Please run /login"
    with broker.client("user") as user:
        user.call("tell", to="bob", text="are you there?")
        assert not agent(broker, "bob")["waking"], "a failed agent is not woken (a nudge would type into its pane)"
        said = [m["text"] for m in user.call("history")["messages"] if m["kind"] == "log"]
    assert "bob cannot work: Not logged in · Please run /login" in said
    hook(broker, "bob", "UserPromptSubmit")
    assert agent(broker, "bob")["state"] == "busy" and "failed" not in agent(broker, "bob")


def test_the_cli_waiting_at_its_prompt_clears_a_blocked_agent_but_not_a_failed_one(broker: BrokerProcess) -> None:
    idle = {"notification_type": "idle_prompt", "message": "Claude is waiting for your input"}
    hook(broker, "bob", "Notification", {"notification_type": "elicitation_dialog", "message": "Which database?"})
    assert agent(broker, "bob")["blocked"]["kind"] == "question"
    hook(broker, "bob", "Notification", idle)
    assert agent(broker, "bob")["state"] == "idle"
    hook(broker, "bob", "StopFailure", {"error": "rate_limit", "last_assistant_message": "API Error: rate limited"})
    hook(broker, "bob", "Notification", idle)
    assert agent(broker, "bob")["state"] == "failed"


def copilot_hook(broker: BrokerProcess, agent: str, native: str, payload: dict[str, Any]) -> None:
    subprocess.run(hook_argv(broker.state, agent, "copilot", native), input=json.dumps(payload),
                   capture_output=True, text=True, timeout=30, check=True)


def test_copilot_s_permission_prompt_and_model_error_block_and_fail_it_with_its_words(broker: BrokerProcess) -> None:
    """Copilot CLI's own payloads (as its hooks send them): the prompt's message names what it asks, and
    errorOccurred's error is an object; a tool's error is the model's to read, not the agent's failure."""
    copilot_hook(broker, "bob", "userPromptSubmitted", {"prompt": "make it"})
    copilot_hook(broker, "bob", "notification", {"message": "Run command: touch build/x", "title": "Permission needed",
                                                 "notification_type": "permission_prompt"})
    blocked = agent(broker, "bob")["blocked"]
    assert (blocked["kind"], blocked["tool"], blocked["detail"], blocked["answerable"]) == (
        "permission", "Run command", "touch build/x", False)
    copilot_hook(broker, "bob", "postToolUse", {"toolName": "bash"})
    copilot_hook(broker, "bob", "errorOccurred", {"errorContext": "tool_execution", "recoverable": True,
                                                  "error": {"message": "exit code 1", "name": "Error"}})
    assert agent(broker, "bob")["state"] == "busy"
    error = {"message": '{"code":401,"message":"Incorrect API key provided: dummy"}', "name": "Error", "stack": "Error"}
    copilot_hook(broker, "bob", "errorOccurred", {"errorContext": "model_call", "recoverable": True, "error": error})
    bob = agent(broker, "bob")
    assert bob["state"] == "failed" and bob["failed"]["reason"] == error["message"]


def test_blocked_and_why_survive_a_broker_restart(broker: BrokerProcess) -> None:
    proc = held_hook(broker, "bob", BASH)
    wait_until(lambda: agent(broker, "bob").get("blocked"), message="bob blocked")
    broker.kill9()
    assert output(proc) is None, "the hook gives up with the broker: its CLI asks in its pane"
    broker.start()
    bob = agent(broker, "bob")
    assert bob["state"] == "blocked" and bob["blocked"]["detail"] == "touch build/x"
    assert bob["blocked"]["answerable"] is False and "restarted" in bob["blocked"]["how"]


def test_a_hook_that_cannot_parse_its_event_still_reports_and_never_breaks(broker: BrokerProcess) -> None:
    proc = subprocess.run([*hook_argv(broker.state, "bob", "claude", "PermissionRequest"), "--hold-ms", "1000"],
                          input="{not json", capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == ""
    assert agent(broker, "bob")["blocked"]["tool"] == "a tool"


def test_the_held_hook_stays_within_its_deadline_when_the_broker_trickles(tmp_path: Path) -> None:
    """No broker at all: the permission hook exits 0 at once with nothing printed (the CLI asks)."""
    state = tmp_path / "gone"
    (state / "agents" / "a").mkdir(parents=True)
    (state / "agents" / "a" / "token").write_text("t\n")
    (state / "logs").mkdir()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-I", "-S", *hook_argv(state, "a", "claude", "PermissionRequest")[3:],
                           "--hold-ms", "60000"], input=json.dumps(BASH), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "" and time.monotonic() - started < scaled(3)


class InProcess:
    """A pod's broker in this process with ports of the test's own: what it notifies is recorded."""

    def __init__(self, pod_file: Path) -> None:
        import asyncio

        from podctl.broker.paths import PodPaths
        from podctl.broker.ports import Notice, Ports
        from podctl.broker.service import Broker
        from podctl.broker.store import Store
        from podctl.pods.load import load_pod

        self.notices: list[Notice] = []

        async def notify(pod: str, notice: Notice) -> str:
            self.notices.append(notice)
            return "recorded"

        self.loop = asyncio.new_event_loop()
        spec = load_pod(pod_file)
        self.paths = PodPaths.of(spec.name).ensure()
        self.store = self.loop.run_until_complete(Store.open(self.paths.db))
        self.broker = Broker(spec, pod_file, self.paths, self.store, Ports(notify=notify))
        self.loop.run_until_complete(self.broker.load())

    def call(self, agent: str, op: str, **args: object) -> dict[str, Any]:
        from podctl.broker import wire

        frame = wire.request(1, op, agent, self.paths.read_token(agent), args)
        return wire.unwrap(self.loop.run_until_complete(self.broker.handle(frame)))

    def settle(self, seconds: float = 0.05) -> None:
        import asyncio

        self.loop.run_until_complete(asyncio.sleep(seconds))

    def close(self) -> None:
        self.loop.run_until_complete(self.broker.attention.close())
        self.loop.run_until_complete(self.broker.rules.close())
        self.loop.run_until_complete(self.store.close())
        self.loop.close()


@pytest.fixture
def pod(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[InProcess]:
    from ..helpers import write_pod

    extra = getattr(request, "param", "")
    handle = InProcess(write_pod(tmp_path / "att", "name: att\nagents:\n  writer: {cli: claude}\n  guard: {cli: script}\n"
                                 + extra))
    yield handle
    handle.close()


NOTIFY = "notify: [{on: [blocked, failed, over_budget], run: [echo, '{agent}', '{on}', '{detail}']}]\n"
QUESTION = {"notification_type": "elicitation_dialog", "message": "Which database?"}


@pytest.mark.parametrize("pod", [NOTIFY], indirect=True)
def test_notify_tells_once_per_episode_never_again_while_it_lasts(pod: InProcess) -> None:
    pod.call("writer", "hook", event="notification", facts=QUESTION)
    pod.call("writer", "hook", event="notification", facts=QUESTION)  # the same need, said again
    pod.settle()
    assert [(n.on, n.agent, n.run) for n in pod.notices] == [
        ("blocked", "writer", ("echo", "writer", "blocked", "Which database?"))]
    pod.call("writer", "hook", event="turn_start")
    pod.call("writer", "hook", event="notification", facts=QUESTION)  # back at once: the same episode
    pod.settle()
    assert len(pod.notices) == 1, "a need that flickers is not a new episode"
    pod.call("writer", "hook", event="failure", facts={"last_assistant_message": "API Error: 529 overloaded"})
    pod.settle()
    assert [(n.on, n.detail) for n in pod.notices[1:]] == [("failed", "API Error: 529 overloaded")]


@pytest.mark.parametrize("pod", [NOTIFY + "approvals: [{agents: [writer], to: guard, timeout: 1s, then: deny}]\n"],
                         indirect=True)
def test_an_approver_that_does_not_answer_in_time_denies_when_the_pod_file_says_so(pod: InProcess) -> None:
    request = pod.call("writer", "hook", event="permission", facts=BASH, hold_ms=20_000)["request"]
    assert pod.call("user", "status")["agents"][0]["blocked"]["awaiting"] == "guard"
    answer = pod.call("writer", "await_decision", request=request["id"], timeout_ms=10_000)
    assert answer["decision"] == "deny" and "guard did not answer within 1s" in answer["message"]
    assert pod.notices == [], "the person was never needed"


@pytest.mark.parametrize("pod", [NOTIFY + "approvals: [{agents: [writer], to: guard, timeout: 1s, then: person}]\n"],
                         indirect=True)
def test_an_approver_that_does_not_answer_in_time_hands_it_to_the_person(pod: InProcess) -> None:
    request = pod.call("writer", "hook", event="permission", facts=BASH, hold_ms=20_000)["request"]
    pod.settle()
    assert pod.notices == [], "not the person's yet"
    assert pod.call("writer", "await_decision", request=request["id"], timeout_ms=2_000)["decision"] is None
    blocked = pod.call("user", "status")["agents"][0]["blocked"]
    assert blocked["answerable"] and "awaiting" not in blocked
    assert [(n.on, n.detail) for n in pod.notices] == [("blocked", "Bash  touch build/x")]
    pod.call("user", "approve", name="writer")
    assert pod.call("writer", "await_decision", request=request["id"], timeout_ms=100)["decision"] == "allow"


@pytest.mark.parametrize("pod", [NOTIFY + "approvals: [{agents: [writer], to: guard}]\n"], indirect=True)
def test_an_approvers_reply_decides_by_its_first_word_and_a_late_one_is_told(pod: InProcess) -> None:
    request = pod.call("writer", "hook", event="permission", facts=BASH, hold_ms=20_000)["request"]
    asks = pod.call("user", "asks")["asks"]
    assert asks[0]["from"] == "podctl" and asks[0]["waiting_on"] == ["guard"]
    pod.call("guard", "post_reply", ask_id=asks[0]["ask_id"], text="**Deny**: rm is not needed here")
    answer = pod.call("writer", "await_decision", request=request["id"], timeout_ms=2_000)
    assert answer["decision"] == "deny" and "rm is not needed here" in answer["message"]
    assert "guard, this pod's approver" in answer["message"]


@pytest.mark.parametrize("pod", [NOTIFY + "limits: {budget_tokens_per_agent: 1000}\n"], indirect=True)
def test_over_budget_is_notified_once(pod: InProcess) -> None:
    record = {"key": "k1", "model": "m", "ts": 1.0, "input": 900, "cached": 0, "output": 200, "reasoning": 0}
    for key in ("k1", "k2"):
        pod.call("user", "usage_report", of="writer", path="/s.jsonl", inode=1, offset=1, state={},
                 records=[{**record, "key": key}])
    pod.settle()
    assert [(n.on, n.agent) for n in pod.notices] == [("over_budget", "writer")]
