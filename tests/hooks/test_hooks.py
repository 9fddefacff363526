"""The hook path: standard library only, never breaks its CLI, injects exactly once, in each CLI's format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from podctl.hooks.adapter import get_adapter
from podctl.hooks.cline import ClineAdapter
from podctl.hooks.opencode import OpenCodeAdapter
from podctl.pods import clis

from ..helpers import BrokerProcess, hook_argv

PODCTL_ALLOWED = {
    "podctl", "podctl.broker", "podctl.broker.wire", "podctl.broker.codec", "podctl.pods", "podctl.pods.layout",
    "podctl.hooks", "podctl.hooks.path", "podctl.hooks.path.run", "podctl.hooks.path.render", "podctl.hooks.path.text",
}
STDLIB_ALLOWED = {
    "_json", "_socket", "_signal", "time", "__future__",
    "os", "stat", "_stat", "posixpath", "genericpath", "_collections_abc",
}
"""Beyond what a bare `python -I -S` imports anyway: the C halves of json and socket, the alarm of
the deadline, `time` for the log line, `__future__` for annotations, and `os` with what it needs."""


def run_hook(state: Path, agent: str, cli: str, event: str, payload: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hook_argv(state, agent, cli, event), input=json.dumps(payload or {}), capture_output=True, text=True, timeout=30,
    )


def imported_by(argv: list[str], stdin: str = "{}") -> set[str]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line} - {"package"}


@pytest.mark.parametrize("cli", clis.names())
def test_the_hook_path_is_fenced_in(broker: BrokerProcess, cli: str) -> None:
    """A hook imports only the fenced package, the wire protocol, and a few C modules: no adapter,
    no json, socket, re, typing or enum (docs: hooks/path/__init__.py)."""
    native = next(n for n, how in get_adapter(cli).hook_events.items() if how.event == "tool_done")
    with broker.client("alice") as alice:
        alice.call("tell", to="bob", text="so it has something to inject")
    baseline = imported_by([sys.executable, "-I", "-S", "-X", "importtime", "-c", "pass"])
    imported = imported_by(hook_argv(broker.state, "bob", cli, native, "-X", "importtime")) - baseline
    ours = {m for m in imported if m.startswith("podctl")}
    assert ours <= PODCTL_ALLOWED, f"the hook imported {sorted(ours - PODCTL_ALLOWED)}"
    others = imported - ours
    assert others <= STDLIB_ALLOWED, f"the hook imported {sorted(others - STDLIB_ALLOWED)}"


@pytest.mark.parametrize(("cli", "event"), [(c, next(iter(get_adapter(c).hook_events))) for c in clis.names()])
def test_broker_down_means_exit_0_with_nothing_injected(tmp_path: Path, cli: str, event: str) -> None:
    state = tmp_path / "gone"
    (state / "agents" / "a").mkdir(parents=True)
    (state / "agents" / "a" / "token").write_text("t\n")
    (state / "logs").mkdir()
    proc = run_hook(state, "a", cli, event, {"hook_event_name": event})
    assert proc.returncode == 0 and proc.stdout == ""
    assert "cannot reach the broker" in (state / "logs" / "hooks.log").read_text()


def test_garbage_input_never_breaks_the_cli(broker: BrokerProcess) -> None:
    proc = subprocess.run(hook_argv(broker.state, "bob", "claude", "PostToolUse"), input="not json {",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0


def test_a_closed_stdout_exits_0_and_the_message_is_offered_again(broker: BrokerProcess) -> None:
    """The CLI stopped reading: the hook still exits 0 (no "Exception ignored" and status 120 at
    interpreter exit), and what it could not print is not marked injected (it is offered again when its claim lapses)."""
    with broker.client("alice") as alice:
        ask_id = alice.call("ask", to="bob", text="still there?")["ask_id"]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(hook_argv(broker.state, "bob", "claude", "UserPromptSubmit"), input=b"{}",
                              stdout=write_end, stderr=subprocess.PIPE, timeout=30)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (0, b"")
    with broker.client("alice") as alice:
        assert alice.call("check_replies", ask_id=ask_id)["delivery"][0]["state"] == "queued"


@pytest.mark.parametrize(
    ("cli", "event", "shape"),
    [
        ("claude", "UserPromptSubmit", "additional"),
        ("claude", "Stop", "block"),
        ("codex", "PostToolUse", "additional"),
        ("codex", "Stop", "block"),
        ("gemini", "BeforeAgent", "additional"),
        ("gemini", "AfterAgent", "block"),
        ("qwen", "PostToolUse", "additional"),
        ("qwen", "Stop", "block"),
    ],
)
def test_injection_in_each_cli_format_exactly_once(broker: BrokerProcess, cli: str, event: str, shape: str) -> None:
    with broker.client("alice") as alice:
        ask_id = alice.call("ask", to="bob", text="please check <this> & that")["ask_id"]
    proc = run_hook(broker.state, "bob", cli, event, {"hook_event_name": event})
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    if shape == "additional":
        assert out["hookSpecificOutput"]["hookEventName"] == event
        text = out["hookSpecificOutput"]["additionalContext"]
    else:
        assert out["decision"] == "block"
        text = out["reason"]
    assert f"ask #{ask_id} from alice" in text and f"post_reply(ask_id={ask_id}" in text
    assert "please check <this> & that" in text
    again = run_hook(broker.state, "bob", cli, event, {"hook_event_name": event})
    assert again.stdout == "", "a message is injected once"
    with broker.client("alice") as alice:
        assert alice.call("check_replies", ask_id=ask_id)["delivery"][0]["state"] == "injected"


def test_turn_end_does_not_continue_the_turn_for_a_plain_tell(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice:
        alice.call("tell", to="bob", text="fyi, no rush")
    assert run_hook(broker.state, "bob", "claude", "Stop").stdout == ""
    out = json.loads(run_hook(broker.state, "bob", "claude", "UserPromptSubmit").stdout)
    assert "fyi, no rush" in out["hookSpecificOutput"]["additionalContext"], "it waits for the next turn"


def test_session_start_injects_role_members_and_routes(broker: BrokerProcess) -> None:
    out = json.loads(run_hook(broker.state, "bob", "codex", "SessionStart").stdout)
    text = out["hookSpecificOutput"]["additionalContext"]
    assert "You are agent `bob` of the podctl pod `bus`" in text and "Your role: reviews code" in text
    assert "- alice (script): writes code" in text and "post_reply(ask_id, text)" in text


def test_adapters_prepare_their_files_in_the_agent_folder_only(tmp_path: Path) -> None:
    from podctl.hooks.adapter import AgentContext

    for cli in clis.names():
        agent_dir = tmp_path / "state" / "agents" / cli
        agent_dir.mkdir(parents=True)
        ctx = AgentContext(pod="p", agent=cli, cli=cli, role="r", workdir=tmp_path, state_dir=tmp_path / "state",
                           agent_dir=agent_dir, token="t", model="m1", args=("--x",), env={"K": "V"})
        adapter = get_adapter(cli)
        if cli != "codex":
            adapter.prepare(ctx)
        launch = adapter.launch(ctx)
        assert launch.cwd == tmp_path and launch.env["K"] == "V" and "--x" in launch.argv
    assert json.loads((tmp_path / "state/agents/claude/mcp.json").read_text())["mcpServers"]["podctl"]["args"][-4:] == [
        "--socket", str(tmp_path / "state" / "broker.sock"), "--token-file", str(tmp_path / "state/agents/claude/token")]
    settings = json.loads((tmp_path / "state/agents/gemini/gemini-home/.gemini/settings.json").read_text())
    assert settings["mcpServers"]["podctl"]["trust"] is True and "env" not in settings["mcpServers"]["podctl"]
    assert set(settings["hooks"]) == {"SessionStart", "BeforeAgent", "AfterTool", "AfterAgent", "SessionEnd", "Notification"}


def test_an_agent_is_handed_only_its_own_identity(tmp_path: Path) -> None:
    """Its environment, command line and config files name the pod's socket and its own folder,
    never the pod folder itself (which leads to every other token, the user's included)."""
    import re

    from podctl.hooks.adapter import AgentContext

    state = tmp_path / "state"
    for cli in clis.names():
        agent_dir = state / "agents" / cli
        agent_dir.mkdir(parents=True)
        ctx = AgentContext(pod="p", agent=cli, cli=cli, role="r", workdir=tmp_path, state_dir=state,
                           agent_dir=agent_dir, token="t", env={"K": "V"})
        adapter = get_adapter(cli)
        if cli != "codex":
            adapter.prepare(ctx)
        launch = adapter.launch(ctx)
        assert "PODCTL_STATE" not in launch.env
        texts = [*launch.argv, *launch.env.values()]
        texts += [p.read_text(errors="replace") for p in agent_dir.rglob("*") if p.is_file() and not p.is_symlink()]
        if cli == "codex":
            texts += [" ".join(ctx.hook_command(how)) for how in adapter.hook_events.values()]
            texts.append(" ".join(ctx.shim_command()))
        for text in texts:
            for match in re.finditer(re.escape(str(state)) + r"([^\s\"',\]]*)", text):
                rest = match.group(1)
                assert rest == "/broker.sock" or rest.startswith(f"/agents/{cli}"), (cli, match.group(0))


def test_doctor_reports_tmux_clis_and_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import shutil

    from ..helpers import podctl

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "codex").write_text("#!/bin/sh\necho codex-cli 0.1.0\n")
    (bin_dir / "codex").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(shutil.which('tmux') or '/usr/bin/tmux').parent}:{os.environ['PATH']}")
    answer = podctl("doctor", "--json", check=False)
    assert answer.returncode == 1, "a failing check (codex's version) makes doctor exit 1"
    rows = {r["check"]: r for r in __import__("json").loads(answer.stdout)}
    assert rows["tmux"]["ok"] is True and rows["tmux"]["detail"].startswith("tmux ")
    assert rows["codex"]["ok"] is False and "podctl's tests pin 0.169.0" in rows["codex"]["detail"]
    assert rows["state folder"]["ok"] is True


def test_a_first_prompt_hook_with_intro_is_a_turn_start_that_introduces_the_session(broker: BrokerProcess) -> None:
    """Copilot CLI's sessionStart comes with the first prompt, beside its userPromptSubmitted: a
    turn start (busy, whatever order the two arrive in) that carries the introduction."""
    with broker.client("alice") as alice:
        alice.call("tell", to="bob", text="hello bob")
    out = json.loads(run_hook(broker.state, "bob", "copilot", "sessionStart").stdout)
    text = out["additionalContext"]
    assert "You are agent `bob` of the podctl pod `bus`" in text and "hello bob" in text
    assert run_hook(broker.state, "bob", "copilot", "userPromptSubmitted").stdout == "", "injected once"
    with broker.client("alice") as alice:
        assert {a["name"]: a["state"] for a in alice.call("list_agents")["agents"]}["bob"] == "busy"


def test_an_announced_cli_is_idle_once_started_before_any_hook_of_its_own(broker: BrokerProcess, tmp_path: Path) -> None:
    """A CLI that fires no hook until its first prompt is reported up by its launch command."""
    from podctl.hooks.adapter import AgentContext

    ctx = AgentContext(pod="bus", agent="bob", cli="copilot", role="r", workdir=tmp_path, state_dir=broker.state,
                       agent_dir=broker.state / "agents" / "bob", token=broker.token("bob"))
    marker = tmp_path / "ran"
    proc = subprocess.run(ctx.announced(["sh", "-c", f"echo \"$0 $1\" > {marker}", "the-cli", "its arg"]),
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert marker.read_text() == "the-cli its arg\n", "the CLI runs with its own arguments"
    with broker.client("alice") as alice:
        assert {a["name"]: a["state"] for a in alice.call("list_agents")["agents"]}["bob"] == "idle"


def test_the_opencode_plugin_is_valid_javascript(tmp_path: Path) -> None:
    """A syntax error in the plugin would silently cost an OpenCode agent every hook (OpenCode skips
    a plugin that does not load)."""
    from podctl.hooks.adapter import AgentContext

    ctx = AgentContext(pod="p", agent="a", cli="opencode", role="", workdir=tmp_path, state_dir=tmp_path,
                       agent_dir=tmp_path / "a", token="t")
    plugin = tmp_path / "podctl.mjs"
    adapter = get_adapter("opencode")
    assert isinstance(adapter, OpenCodeAdapter)
    plugin.write_text(adapter.plugin(ctx))
    proc = subprocess.run(["node", "--check", str(plugin)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("permissions", [None, "ask"])
def test_the_cline_plugin_is_valid_javascript_and_holds_tool_calls_only_where_cline_asks(
    tmp_path: Path, permissions: str | None
) -> None:
    """Cline skips a plugin that does not load; its beforeTool waits for podctl only under the
    `permissions` that make Cline ask (else every call would wait on a hook for nothing)."""
    from podctl.hooks.adapter import AgentContext

    ctx = AgentContext(pod="p", agent="a", cli="cline", role="", workdir=tmp_path, state_dir=tmp_path,
                       agent_dir=tmp_path / "a", token="t", permissions=permissions, hold_s=30)
    adapter = get_adapter("cline")
    assert isinstance(adapter, ClineAdapter)
    text = adapter.plugin(ctx)
    plugin = tmp_path / "podctl.mjs"
    plugin.write_text(text)
    proc = subprocess.run(["node", "--check", str(plugin)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"const HOLD_TIMEOUT_MS = {45_000 if permissions else 0}\n" in text
