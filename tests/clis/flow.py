"""The checks every real CLI agent goes through against a fake Chat Completions server, shared by the
tests of the CLIs added as third-party adapters (test_qwen, test_copilot, test_kilo, test_cline):
the model's script, a tell injected after a tool call, a review asked of another agent, usage, and
the registry's view of the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..fakes.http import FakeServer
from ..fakes.openai_chat import FakeChat, request_text
from ..helpers import agent_state, broker_call, pane_text, podctl, transcript, wait_until, write_pod

TOOLS = {"tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents"}


def ask_id_in(body: dict[str, Any], asker: str = "user") -> int:
    return int(re.findall(rf"ask #(\d+) from {asker}", request_text(body))[-1])


def last_user_text(body: dict[str, Any]) -> str:
    last = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]
    return json.dumps(last.get("content"), ensure_ascii=False)


def agent_script(name: str, reviewer: str) -> list[dict[str, Any]]:
    """What the agent's model does: answer the user's ask; call a tool while a note arrives; ask
    `reviewer` for a review and wait for it."""
    return [
        {"call": "post_reply", "arguments": lambda body: {"ask_id": ask_id_in(body), "text": f"fine, says {name}"}},
        {"text": "Answered."},
        {"call": "list_agents", "arguments": {}},
        {"text": "Saw the note."},
        {"call": "ask", "arguments": {"to": reviewer, "text": "Please review src/feature.py"}},
        {"call": "wait_for_reply", "arguments": lambda body: {
            "ask_id": int(re.findall(r"ask_id[\\\"': ]+(\d+)", request_text(body))[-1]), "timeout_ms": 60000}},
        {"text": "The reviewer approved."},
    ]


def answers_an_ask(pod: str, agent: str) -> None:
    answer = podctl("send", pod, "--to", agent, "--ask", "How is the build?", "--wait", "90").stdout
    assert f"reply from {agent}: fine, says {agent}" in answer
    wait_until(lambda: agent_state(pod, agent) == "idle", timeout=30, message="idle after its turn")


def tell_after_a_tool_call(pod: str, agent: str, fake: FakeChat) -> dict[str, Any]:
    """Woken by an ask while idle; a note sent while its model is held reaches the request after its
    tool call, once. Returns the request that started the woken turn."""
    fake.hold()
    podctl("send", pod, "--to", agent, "--ask", "Anything else?")
    wait_until(lambda: agent_state(pod, agent) == "busy", timeout=30, message="busy: woken again")
    podctl("send", pod, "--to", agent, "note sent while busy")
    fake.release()
    after = wait_until(lambda: fake.conversation()[3:4], timeout=60, message="the request after the tool call")[0]
    woken = fake.conversation()[2]
    assert "Anything else?" in request_text(woken)
    assert "note sent while busy" not in request_text(woken)
    assert request_text(after).count("note sent while busy") == 1, "injected once, after the tool call"
    wait_until(lambda: agent_state(pod, agent) == "idle", timeout=60, message="idle again")
    return woken


def gets_a_review(pod: str, agent: str, fake: FakeChat, reviewer: str, review: str) -> None:
    """Told to get a review: its model asks `reviewer`, waits, and its next request has `review`."""
    podctl("send", pod, "--to", agent, f"Get src/feature.py reviewed by {reviewer}.")
    wait_until(lambda: any(review in request_text(r) for r in fake.conversation()[5:]), timeout=120,
               message=f"the review in {agent}'s next request")
    history = transcript(pod)
    assert f"{agent} → user reply to #" in history
    assert f"{agent} → {reviewer} ask #" in history and f"{reviewer} → {agent} reply to #" in history


def usage_matches(pod: str, agents: dict[str, FakeChat], counted: tuple[str, ...] = ()) -> None:
    """Each agent's tokens are what its fake reported for its conversation, each request once
    (`counted`: only these totals, for a CLI that records fewer)."""

    def matches() -> bool:
        used = json.loads(podctl("usage", pod, "--json").stdout)["agents"]
        return all({k: used[name][k] for k in counted or fake.reported()} ==
                   {k: v for k, v in fake.reported().items() if not counted or k in counted}
                   for name, fake in agents.items())

    wait_until(matches, timeout=30, message=f"podctl usage to equal what the fakes reported: "
               f"{ {name: fake.reported() for name, fake in agents.items()} }")


PROBE = ('echo "XDG_CACHE_HOME=${XDG_CACHE_HOME-unset} XDG_DATA_HOME=${XDG_DATA_HOME-unset}'
         ' npm_config_cache=${npm_config_cache-unset}" > shell-env.txt')
"""What the agent's model runs with its CLI's own shell tool, to see the folders its commands get."""
USERS_FOLDERS = "XDG_CACHE_HOME=unset XDG_DATA_HOME=unset npm_config_cache=unset\n"
"""The user's (the tests run with none of them set, cli_env), not those podctl gives the CLI."""


def probe_steps(tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's steps for `commands_get_the_users_folders`: run PROBE with `tool`, then say so."""
    return [{"call": tool, "builtin": True, "arguments": arguments}, {"text": "Printed them."}]


def commands_get_the_users_folders(pod: str, agent: str, workdir: Path) -> None:
    """Told to look, its model runs PROBE with the CLI's shell tool (probe_steps): the command sees the
    user's cache and data folders, although the CLI itself was given podctl's."""
    podctl("send", pod, "--to", agent, "Print your cache and data folders.")
    out = workdir / "shell-env.txt"
    try:
        seen = wait_until(lambda: out.is_file() and out.read_text().endswith("\n") and out.read_text(), timeout=120,
                          message=f"{agent}'s shell command to write {out}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- pane\n{pane_text(pod, agent)[-3000:]}\n--- tail\n{transcript(pod)[-2000:]}") from None
    assert seen == USERS_FOLDERS, "the agent's own commands get the user's folders back"


def is_a_cli_like_any_other(tmp_path: Path, cli: str, version: str) -> None:
    """Nothing in podctl names the CLI: the registry gives it to `validate`, `add`, the templates and `doctor`."""
    pod_file = write_pod(tmp_path / "t", f"name: t\nextends: review-pod\nvars: {{writer_cli: {cli}}}\n")
    assert podctl("validate", str(pod_file)).returncode == 0
    podctl("add", str(pod_file), cli, "--name", "helper")
    assert f"helper:\n    cli: {cli}" in pod_file.read_text()
    doctor = json.loads(podctl("doctor", "--json", check=False).stdout)
    row = next(r for r in doctor if cli in json.dumps(r))
    assert version in json.dumps(row)


def row_of(pod: str, agent: str) -> dict[str, Any]:
    return next(a for a in broker_call(pod, "status")["agents"] if a["name"] == agent)


def blocked_on(pod: str, agent: str, detail: str) -> dict[str, Any]:
    """The agent's `blocked` facts while it is blocked on `detail` ({} otherwise)."""
    row = row_of(pod, agent)
    blocked = row.get("blocked") or {}
    return blocked if row["state"] == "blocked" and detail in str(blocked.get("detail")) else {}


def fails_on_a_401(pod: str, agent: str, fake: FakeServer, within: float = 20) -> dict[str, Any]:
    """Its model server turns the key away: the agent shows `failed` with the CLI's words within seconds."""
    wait_until(lambda: agent_state(pod, agent) == "idle", timeout=60, message=f"{agent} idle before the 401")
    fake.refusing = True
    podctl("send", pod, "--to", agent, "and the last one")
    failed: dict[str, Any] = wait_until(lambda: row_of(pod, agent).get("failed"), timeout=within,
                                        message=f"{agent} failed on the 401")
    return failed


def approve_runs_and_deny_carries_the_reason(pod: str, agent: str, work: Path, fake: FakeChat, tool: str) -> None:
    """The model's `touch approved.txt` then `touch denied.txt` with the CLI's shell `tool`: each blocks
    the agent with the tool and the command, answerable by podctl; `approve` runs the first; `deny`
    does not run the second, and the model's next request carries the reason."""
    blocked = wait_until(lambda: blocked_on(pod, agent, "touch approved.txt"), timeout=60, message=f"{agent} blocked")
    assert (blocked["kind"], blocked["tool"], blocked["answerable"]) == ("permission", tool, True), blocked
    assert podctl("approve", pod, agent).stdout.strip() == f"approved {agent}: {tool}  touch approved.txt"
    wait_until(lambda: (work / "approved.txt").exists(), timeout=30, message="the approved command to run")

    wait_until(lambda: blocked_on(pod, agent, "touch denied.txt"), timeout=60, message=f"{agent} blocked again")
    podctl("deny", pod, agent, "--reason", "NOT-IN-THIS-FOLDER-7")
    wait_until(lambda: any("NOT-IN-THIS-FOLDER-7" in request_text(r) for r in fake.conversation()), timeout=60,
               message="the model's next request to carry the reason")
    assert not (work / "denied.txt").exists()
