"""The `qwen` adapter (Qwen Code 0.24.4; facts in shared/reference/more-clis.md).

Built as a third party would build one: this module and its entry point in pyproject.toml. Qwen
Code is a Gemini CLI fork with Claude Code's hook protocol (command hooks per event,
`hookSpecificOutput.additionalContext`, `{"decision": "block"}` at Stop), so it is a
`HookProtocol` adapter. Files podctl writes, all under the agent's folder (the user's `~/.qwen`
is never written):
- `qwen-home/` is the CLI's `QWEN_HOME` (its whole global folder: settings, sessions, memory,
  temp files). `settings.json` there is made at every start from three layers: podctl's defaults
  (no auto-update, no usage statistics or telemetry, no follow-up suggestions and no managed
  auto-memory, each of which costs a model request per turn; the auth type of the API key in the
  agent's environment, else a "Connect a Provider" dialog opens), then the user's own
  `~/.qwen/settings.json` (their providers, auth and model settings), then what podctl needs: the
  `podctl` MCP server (tool timeout 300 s, above `wait_for_reply`'s cap), its tools allowed and
  kept out of the deferred-tool search (`tools.visible`), `ask_user_question` denied (its dialog
  would stall an unattended pane: the agent asks through podctl), and podctl's hooks after the
  user's. The user's `.env`, `QWEN.md`, `oauth_creds.json`, `commands/` and `agents/` are linked in.
- `qwen-input.jsonl`: the CLI's `--input-file`, which it watches and submits from when idle. The
  wake appends the fixed wake text there (`{"type": "submit", ...}`) once the prompt is on
  screen: no keystroke goes into the pane.

Hooks: SessionStart, UserPromptSubmit (also fired with an empty prompt when the model continues
after tool results), PostToolUse, Stop and SessionEnd as in Claude Code; StopFailure (an API
error ended the turn, fired instead of Stop) shows the agent failed with the CLI's words.

Token usage: every model request is a `ui_telemetry` record (`qwen-code.api_response`) in the
session's chat file `qwen-home/projects/<project>/chats/<session>.jsonl`, side agents' included.

Attention (docs/attention.md):
- permission prompt: `PermissionRequest` (tool_name, tool_input; fires when the dialog opens; its
  answer can allow or deny as in Claude Code) and `Notification` with `notification_type:
  "permission_prompt"` ("Qwen Code needs your permission to use <tool>"), both at once; the
  screen shows "Waiting for user confirmation...". The input file also takes
  `{"type": "confirmation_response", "request_id", "allowed"}`.
- question: the `ask_user_question` tool (denied here); `Notification` types also include
  `idle_prompt` ("Qwen Code is waiting for your input", after each turn) and `auth_success`.
- failure: `StopFailure` (`error`, `error_details`, `last_assistant_message`); `PostToolUseFailure`
  and `PermissionDenied` for single tools.
- permission modes (`--approval-mode`, `tools.approvalMode`): `plan`, `default` (asks for edits
  and shell commands), `auto-edit`, `auto` (the CLI's default: an LLM classifier approves safe
  calls, each classification a model request), `yolo`; `permissions.allow/ask/deny` rules.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .adapter import AgentContext, HookEvent, Launch, PermissionMode, link_credentials, merge_settings, mode_argv, read_settings
from .protocol import PERMISSION_REQUEST, HookProtocol, hook_table
from .usage import StatelessParser, UsageRecord, UsageSource, count, obj, timestamp

HOME_DIR = "qwen-home"
INPUT_FILE = "qwen-input.jsonl"
MCP_TIMEOUT_MS = 300_000
TOOLS = ("tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents")
LINKED = (".env", "QWEN.md", "oauth_creds.json", "commands", "agents")
"""What of the user's `~/.qwen` the agent's home links to (read by the CLI, not written)."""

EVENTS = {
    **hook_table("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd"),
    "PermissionRequest": PERMISSION_REQUEST,
    "Notification": HookEvent("notification", inject=False),
    "StopFailure": HookEvent("failure", inject=False),
}
"""Qwen Code's events: the common five, a permission request (answered by podctl's hook, as Claude
Code's), its notifications (its permission prompt, which the request already reported; waiting at
its prompt) and a turn ended by an API error."""

ATTENTION = {
    "permission": "PermissionRequest hook, at once; answered by podctl (allow, always, deny with a reason)",
    "question": "none: its ask_user_question tool is denied (the agent asks through podctl)",
    "failed": "StopFailure hook (the CLI's words), when its retries end",
    "dialog": "none reported: its auth dialog opens only without a provider (podctl sets the API key's)",
    "unreported": "a turn interrupted in its pane (Esc, or No in its dialog) fires no hook",
}

PERMISSION_MODES = {
    "default": PermissionMode(says="its own default approval mode auto: a model classifier approves the calls it"
                                   " finds safe (a model request each), the rest ask"),
    "ask": PermissionMode(("--approval-mode", "default"), "approval mode default: edits and shell commands ask"),
    "edits": PermissionMode(("--approval-mode", "auto-edit"), "approval mode auto-edit: edits are allowed, commands ask"),
    "full": PermissionMode(("--approval-mode", "yolo"), "approval mode yolo: nothing asks"),
}
PERMISSION_FLAGS = ("--approval-mode", "-y", "--yolo")

DEFAULTS: dict[str, Any] = {
    "general": {"enableAutoUpdate": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "ui": {"enableFollowupSuggestions": False},
    "memory": {"enableManagedAutoMemory": False, "enableManagedAutoDream": False},
}
"""podctl's choices that the user's own settings may override."""
AUTH_KEYS = (("OPENAI_API_KEY", "openai"), ("ANTHROPIC_API_KEY", "anthropic"), ("GEMINI_API_KEY", "gemini"))


class QwenAdapter(HookProtocol):
    hook_events = EVENTS
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags = PERMISSION_FLAGS
    name = "qwen"
    executable = "qwen"
    tested_versions = ("0.24.4",)
    install_command = "npm install -g @qwen-code/qwen-code@0.24.4"
    wake_ready_text = "Type your message"
    """The empty prompt: the UI is up and its input file is being watched."""
    wake_blocked_texts = ("Waiting for user confirmation",)

    def home(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / HOME_DIR

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        return [UsageSource(agent_dir / HOME_DIR / "projects", "*/chats/**/*.jsonl")]

    def usage_parser(self, state: dict[str, Any] | None = None) -> QwenUsage:
        return QwenUsage(dict(state or {}))

    def wake_input(self, agent_dir: Path, text: str) -> bool:
        """Submit `text` through the input file the CLI watches (no keystroke in its pane)."""
        line = json.dumps({"type": "submit", "text": text}) + "\n"
        try:
            with open(agent_dir / INPUT_FILE, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError:
            return False
        return True

    def prepare(self, ctx: AgentContext) -> None:
        home = self.home(ctx)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        user = _user_home()
        for name in LINKED:
            source = user / name
            link_credentials(source if source.exists() else None, home / name)
        own = read_settings(user / "settings.json")
        settings = merge_settings(merge_settings(self.defaults(ctx), own), self.essentials(ctx))
        settings = merge_settings(settings, {"hooks": self.hook_config(ctx, timeout=10)})
        (home / "settings.json").write_text(json.dumps(settings, indent=2))
        (ctx.agent_dir / INPUT_FILE).unlink(missing_ok=True)

    def defaults(self, ctx: AgentContext) -> dict[str, Any]:
        """DEFAULTS, and the auth type of the API key in the agent's environment: without one (or
        the user's own), the CLI opens its "Connect a Provider" dialog."""
        env = {**os.environ, **ctx.env}
        auth = next((kind for key, kind in AUTH_KEYS if env.get(key)), None)
        return merge_settings(DEFAULTS, {"security": {"auth": {"selectedType": auth}}}) if auth else dict(DEFAULTS)

    def essentials(self, ctx: AgentContext) -> dict[str, Any]:
        """What podctl needs whatever the user's settings say (lists are added to theirs)."""
        shim = ctx.shim_command()
        tools = [f"mcp__podctl__{tool}" for tool in TOOLS]
        settings: dict[str, Any] = {
            "mcpServers": {"podctl": {"command": shim[0], "args": shim[1:], "trust": True, "timeout": MCP_TIMEOUT_MS}},
            "permissions": {"allow": ["mcp__podctl__*"], "deny": ["ask_user_question"]},
            "tools": {"visible": tools},
        }
        if ctx.model:
            settings["model"] = {"name": ctx.model}
        return settings

    def launch(self, ctx: AgentContext) -> Launch:
        argv = [self.executable, "--input-file", str(ctx.agent_dir / INPUT_FILE)]
        if ctx.model:
            argv += ["--model", ctx.model]
        argv += mode_argv(self, ctx)
        argv += list(ctx.args)
        return Launch(argv=argv, env={**ctx.env, "QWEN_HOME": str(self.home(ctx))}, cwd=ctx.workdir)


class QwenUsage(StatelessParser):
    """`qwen-code.api_response` telemetry records, one per model request (side agents' too), keyed
    by the response id. With the OpenAI protocol `input_token_count` is the prompt with cache
    reads, `output_token_count` the completion with reasoning."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        if line.get("type") != "system" or line.get("subtype") != "ui_telemetry":
            return None
        event = obj(obj(line.get("systemPayload")).get("uiEvent"))
        if event.get("event.name") != "qwen-code.api_response":
            return None
        cached = count(event.get("cached_content_token_count"))
        record = UsageRecord(
            key=str(event.get("response_id") or line.get("uuid") or where), model=str(event.get("model") or "unknown"),
            ts=timestamp(event.get("event.timestamp") or line.get("timestamp"), time.time()),
            input=max(0, count(event.get("input_token_count")) - cached), cached=cached,
            output=count(event.get("output_token_count")), reasoning=count(event.get("thoughts_token_count")),
        )
        return record if record.input or record.cached or record.output else None


def _user_home() -> Path:
    """The user's own Qwen Code folder (their `QWEN_HOME`, else `~/.qwen`); only read or linked."""
    return Path(os.environ.get("QWEN_HOME") or Path.home() / ".qwen")


ADAPTER = QwenAdapter()
