"""The `cline` adapter (Cline CLI 3.0.65; facts in shared/reference/more-clis.md).

Built as a third party would build one: this module, its plugin `cline_plugin.js` and its entry
point in pyproject.toml. Files podctl writes, all under the agent's folder (the user's `~/.cline`
is never written):
- `cline-config/`: the CLI's `--config` folder, with `plugins/podctl.js`, podctl's Cline plugin
  (below). Hook files are not used: in the interactive CLI the answers of `TaskStart` and
  `UserPromptSubmit` hook files are ignored (they run detached or without `blockingRunStartHooks`),
  and `--hooks-dir` is not read; a plugin's `hooks.beforeRun` is awaited and its `appendContext`
  joins the turn.
- `cline-data/`: its `--data-dir` (sessions, database, logs, settings; "sandbox" mode: no shared
  hub daemon): `settings/cline_mcp_settings.json` has the user's MCP servers and `podctl` (timeout
  300 s; Cline's default is 60 s, below `wait_for_reply`'s cap); `settings/providers.json` is a copy
  of the user's (their providers, keys and models, as `cline auth` wrote them), taken at every
  start, with the pod's `model:`; `settings/cli-notices.json` marks its start-up notices shown (ClinePass, Cline Desktop,
  zen: else one waits for a key, and Enter opens a browser).
- `bash-env.sh`: its `BASH_ENV`, which the bash of its `run_commands` tool reads: the agent's own
  commands get the user's `XDG_DATA_HOME` back, then the user's own `BASH_ENV` runs.
Its terminal UI library (OpenTUI) makes `$XDG_DATA_HOME/opentui/tree-sitter/` whatever the data
folder: the CLI's `XDG_DATA_HOME` is podctl's shared `<state root>/.cache/cline/`, not `~/.local/share`.

The plugin runs the agent's hook commands: at load (the agent is up: idle), `beforeRun` (turn
start: busy, messages added to the turn; the first also carries the introduction), `afterTool`
(after each tool: messages added), `afterRun` (turn end: idle; a failed run: failed), and
`beforeTool` where podctl answers permissions (below).
Sub-agents' runs are skipped.

Command: `cline --config cline-config --data-dir cline-data ARGS` (the interactive TUI). A pod's
`model:` is set in the copy of `providers.json`, for the provider the user's settings used last:
`-m` alone picks Cline's own account provider, and `-P` with `-m` rewrites the provider's settings
without its key and base URL.
Tools appear as `podctl__<tool>`; Cline approves every tool call by default (`--auto-approve`),
and the server entry also lists podctl's tools under `autoApprove`.

Wake: typed, once the TUI's footer (`Act (Tab)`) is on screen, and not while Cline's question
("Reply with an option number") or a notice waits.

Token usage: the assistant messages of `cline-data/sessions/<id>/<id>.messages.json` (a JSON
document the CLI rewrites, not lines to follow) carry `metrics`; read with `usage_pull`. Cline
records no reasoning tokens.

Attention (docs/attention.md):
- permission prompts: none by default (auto-approve on for every tool). Under the pod file's
  `permissions: ask` or `edits` (`--auto-approve false`: each call asks in the TUI, reads too), the
  plugin's `beforeTool` asks podctl first (a holding `permission` hook): podctl's allow returns the
  tool policy `autoApprove: true` (it runs), a deny `skip` with the reason (the model reads it); with
  no answer within the hold the TUI asks in its pane.
- question: the `ask_question` tool waits for an answer in the pane ("Reply with an option number
  or type your answer"); it cannot be turned off by configuration. The plugin's `beforeTool` reports
  it (blocked on a question, answered in the pane) and its `afterTool` clears it.
- failure: the plugin's `afterRun` gets `result.status` (`completed`, `aborted`, `failed`) and
  `result.error`: a failed run shows the agent failed with the error's message.
- modes: `act` (default) and `plan` (`-p`, Tab in the TUI), `yolo` (`-y`: no approvals, hooks and
  plugins off, so podctl would see nothing: not used), `--auto-approve true|false`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .adapter import (
    Adapter,
    AgentContext,
    HookEvent,
    Launch,
    PermissionMode,
    merge_settings,
    mode_argv,
    read_settings,
    user_env_script,
    with_env,
)
from .usage import UsageRecord, count, obj, timestamp

CONFIG_DIR = "cline-config"
DATA_DIR = "cline-data"
ENV_FILE = "bash-env.sh"
MCP_TIMEOUT_S = 300
TOOLS = ("tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents")
NOTICES = {"shown": {"cline-cli-cline-pass-intro": True, "cline-cli-desktop-launch": True, "cline-cli-zen": True}}
"""Cline 3.0.65's start-up notices (each waits for a key; Enter opens a browser), marked shown."""

EVENTS = {
    "plugin.start": HookEvent("session_start", inject=False),
    "beforeRun.first": HookEvent("turn_start", output="plain", intro=True),
    "beforeRun": HookEvent("turn_start", output="plain"),
    "afterTool": HookEvent("tool_done", output="plain"),
    "afterRun": HookEvent("turn_end", inject=False),
    "afterRun.failed": HookEvent("failure", inject=False),
    "beforeTool": HookEvent("permission", inject=False, output="decision", hold=True),
    "beforeTool.question": HookEvent("notification", inject=False),
}
"""The plugin's hooks; `beforeTool` runs only where the pod file's `permissions` makes Cline ask, and
`beforeTool.question` before its ask_question tool (a question for the person, answered in its pane)."""

HOLDING = ("ask", "edits")
"""The `permissions` under which Cline asks for each tool call, so podctl's plugin asks podctl first."""

ATTENTION = {
    "permission": "under permissions ask/edits only (else Cline asks nothing): its plugin's beforeTool, at once;"
                  " answered by podctl (allow, always, deny with a reason); its own approval shows once podctl's wait ends",
    "question": "its ask_question tool (its plugin's beforeTool), at once; answered in its pane",
    "failed": "a run that ended failed (its plugin's afterRun), with the error's message",
    "dialog": "none: podctl marks its start-up notices shown",
    "unreported": "an approval answered in its pane shows only when the tool ends",
}

PERMISSION_MODES = {
    "default": PermissionMode(says="its own default: auto-approve on, every tool call runs without asking"),
    "ask": PermissionMode(("--auto-approve", "false"), "auto-approve off: every tool call but podctl's asks, reads too"),
    "edits": PermissionMode(("--auto-approve", "false"),
                            "as ask: Cline cannot allow edits alone, so commands, edits and reads ask", narrower=True),
    "full": PermissionMode(("--auto-approve", "true"), "auto-approve on: nothing asks (yolo is not used: it turns"
                                                       " plugins off, and podctl with them)"),
}
PERMISSION_FLAGS = ("--auto-approve", "-y", "--yolo")

PLUGIN = (Path(__file__).resolve().parent / "cline_plugin.js").read_text(encoding="utf-8")


class ClineAdapter(Adapter):
    name = "cline"
    executable = "cline"
    tested_versions = ("3.0.65",)
    install_command = "npm install -g cline@3.0.65"
    wake_text = "You have new podctl messages (shown in your context). Handle them; answer asks with post_reply."
    wake_ready_text = "Act (Tab)"
    """The footer's mode switch: the TUI is up (its prompt says "What can I do for you?" at first,
    "Ask anything" later, busy or idle: podctl wakes only an idle agent)."""
    wake_clear_keys = ("C-u",)
    wake_blocked_texts = ("Reply with an option number", "Press Enter to open")
    """Cline's question waits for an answer; a notice opens a browser on Enter."""
    hook_events = EVENTS
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags = PERMISSION_FLAGS

    def data_dir(self, agent_dir: Path) -> Path:
        return agent_dir / DATA_DIR

    def plugin(self, ctx: AgentContext) -> str:
        hooks = {native: ctx.hook_command(how) for native, how in self.hook_events.items()}
        hold_ms = ctx.hold_timeout_s * 1000 if ctx.permissions in HOLDING else 0
        return PLUGIN.replace("/*HOOKS*/null", json.dumps(hooks)).replace("/*HOLD_TIMEOUT_MS*/0", str(hold_ms))

    def prepare(self, ctx: AgentContext) -> None:
        plugins = ctx.agent_dir / CONFIG_DIR / "plugins"
        plugins.mkdir(parents=True, exist_ok=True, mode=0o700)
        (plugins / "podctl.js").write_text(self.plugin(ctx))
        settings = self.data_dir(ctx.agent_dir) / "settings"
        settings.mkdir(parents=True, exist_ok=True, mode=0o700)
        user = _user_data() / "settings"
        shim = ctx.shim_command()
        servers = merge_settings(read_settings(user / "cline_mcp_settings.json"), {"mcpServers": {"podctl": {
            "command": shim[0], "args": shim[1:], "disabled": False, "timeout": MCP_TIMEOUT_S, "autoApprove": list(TOOLS),
        }}})
        (settings / "cline_mcp_settings.json").write_text(json.dumps(servers, indent=2))
        providers = read_settings(user / "providers.json")
        provider = providers.get("lastUsedProvider")
        if ctx.model and isinstance(provider, str):
            providers = merge_settings(providers, {"providers": {provider: {"settings": {"model": ctx.model}}}})
        if providers:
            target = settings / "providers.json"
            target.write_text(json.dumps(providers, indent=2))
            target.chmod(0o600)
        notices = merge_settings(read_settings(settings / "cli-notices.json"), NOTICES)
        (settings / "cli-notices.json").write_text(json.dumps(notices, indent=2))
        env_file = ctx.agent_dir / ENV_FILE
        env_file.write_text(user_env_script(ctx, ("XDG_DATA_HOME",), "BASH_ENV", env_file))

    def launch(self, ctx: AgentContext) -> Launch:
        argv = [self.executable, "--config", str(ctx.agent_dir / CONFIG_DIR), "--data-dir", str(self.data_dir(ctx.agent_dir))]
        moved = {"XDG_DATA_HOME": str(ctx.shared_cache(self.name)), "BASH_ENV": str(ctx.agent_dir / ENV_FILE)}
        return Launch(argv=with_env(moved, [*argv, *mode_argv(self, ctx), *ctx.args]), env=dict(ctx.env), cwd=ctx.workdir)

    def usage_pull(self, agent_dir: Path, state: dict[str, Any]) -> tuple[list[UsageRecord], dict[str, Any]]:
        """The assistant messages of the session files changed since the last look (each file is a
        JSON document the CLI rewrites; the broker keeps each message once by its id)."""
        seen: dict[str, int] = dict(obj(state.get("files")))
        records: list[UsageRecord] = []
        for path in sorted(self.data_dir(agent_dir).glob("sessions/*/*.messages.json")):
            with contextlib.suppress(OSError):
                changed = path.stat().st_mtime_ns
                if seen.get(path.name) == changed:
                    continue
                records += [r for r in map(_usage, _messages(path)) if r is not None]
                seen[path.name] = changed
        return records, {"files": seen}


def _messages(path: Path) -> list[Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    messages = obj(document).get("messages")
    return messages if isinstance(messages, list) else []


def _usage(message: Any) -> UsageRecord | None:
    """One assistant message's `metrics`: `inputTokens` includes cache reads, `outputTokens` the
    reasoning (which Cline does not count apart)."""
    message = obj(message)
    metrics = obj(message.get("metrics"))
    if message.get("role") != "assistant" or not metrics:
        return None
    cached = count(metrics.get("cacheReadTokens"))
    record = UsageRecord(
        key=str(message.get("id") or ""), model=str(obj(message.get("modelInfo")).get("id") or "unknown"),
        ts=timestamp(message.get("ts"), time.time()),
        input=max(0, count(metrics.get("inputTokens")) - cached),
        cached=cached, output=count(metrics.get("outputTokens")), reasoning=0,
    )
    return record if record.key and (record.input or record.cached or record.output) else None


def _user_data() -> Path:
    """The user's own Cline data folder (their `CLINE_DATA_DIR`, else `$CLINE_DIR/data`, `~/.cline/data`)."""
    if os.environ.get("CLINE_DATA_DIR"):
        return Path(os.environ["CLINE_DATA_DIR"])
    return Path(os.environ.get("CLINE_DIR") or Path.home() / ".cline") / "data"


ADAPTER = ClineAdapter()
