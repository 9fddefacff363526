"""The `claude` adapter (Claude Code 2.1.x).

Files podctl writes, all under the agent's folder (`.../agents/<name>/`; the user's `~/.claude`
and `~/.claude.json` are never edited):
- `claude-config/` is the CLI's `CLAUDE_CONFIG_DIR`: `.claude.json` marks onboarding done, the
  workdir's trust dialog accepted and, when `ANTHROPIC_API_KEY` is set, that key approved (so no
  first-run dialog stalls an unattended agent); `.credentials.json` is a symlink to the user's
  `~/.claude/.credentials.json` when it exists, so their login works;
- `mcp.json` (passed with `--mcp-config`, with `--strict-mcp-config`): the `podctl` MCP server;
- `settings.json` (passed with `--settings`): SessionStart, UserPromptSubmit, PostToolUse, Stop,
  SessionEnd hooks -> `podctl hook`, `mcp__podctl__*` tools allowed without a prompt, and
  `disableDeepLinkRegistration` (else the CLI writes `~/.local/share/applications/
  claude-code-url-handler.desktop` whatever `CLAUDE_CONFIG_DIR` says);
- `claude-cache/`: the CLI's `XDG_CACHE_HOME`. Claude Code keeps its MCP logs in
  `$XDG_CACHE_HOME/claude-cli-nodejs/` (else `~/.cache/...`) and has no narrower setting, so the
  variable is moved for the CLI process;
- `bash-env.sh` (the CLI's `CLAUDE_ENV_FILE`, run before each command of its Bash tool): gives
  the agent's own commands the user's `XDG_CACHE_HOME` back, so pip, uv and the like keep using
  the user's caches; it then runs the user's own `CLAUDE_ENV_FILE`, if any.

`ENABLE_TOOL_SEARCH=false` is set for the agent (unless its `env` says otherwise): Claude Code
2.1 otherwise defers MCP tools behind a search tool, and the seven podctl tools should be in
the model's hands from the first request. `DISABLE_AUTOUPDATER=1` likewise: an agent does not
update the user's Claude Code installation (`claude update` does). `DISABLE_TELEMETRY=1` and
`DISABLE_ERROR_REPORTING=1`: an agent sends no usage telemetry and no error reports.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .adapter import (
    AgentContext,
    HookEvent,
    Launch,
    PermissionMode,
    ScreenSign,
    link_credentials,
    mode_argv,
    user_env_script,
    user_file,
)
from .protocol import CLAUDE_STYLE_EVENTS, PERMISSION_REQUEST, HookProtocol
from .usage import StatelessParser, UsageRecord, UsageSource, count, obj, timestamp

CONFIG_DIR = "claude-config"

TOOLS = ("tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents")

EVENTS = {
    **CLAUDE_STYLE_EVENTS,
    "PermissionRequest": PERMISSION_REQUEST,
    "Notification": HookEvent("notification", inject=False),
    "StopFailure": HookEvent("failure", inject=False),
}
"""Claude Code's events: the common five, a permission request (answered by podctl's hook), its
notifications (an MCP server's question, the CLI waiting at its prompt) and a turn ended by an API error."""


SCREEN_SIGNS = (
    ScreenSign(r"^\S*\s*(?P<reason>\S.*?) · retrying in \d+\w* · attempt (?P<n>\d+)/(?P<of>\d+)", "failed",
               says="{reason} (retrying: attempt {n} of {of})"),
    ScreenSign(r"Not logged in · (?:[Pp]lease )?run /login", "failed"),
    ScreenSign(r"Quick safety check: [Ii]s this a project you created or one you trust\?", "blocked", "dialog",
               says="a trust dialog: {0}"),
    ScreenSign(r"Do you want to (?:proceed|allow|make|create|use)\b.*", "blocked", "permission",
               says="its permission dialog: {0}"),
)
"""What Claude Code shows only on its screen: an API error it retries (401, connection refused: its
StopFailure hook comes only after its ten attempts, minutes later), not being logged in, a trust
dialog, and its own permission dialog (to see one answered in the pane)."""

ATTENTION = {
    "permission": "PermissionRequest hook, at once; answered by podctl (allow, always, deny with a reason)",
    "question": "MCP elicitations (Notification); AskUserQuestion (PermissionRequest): deny lets the model decide",
    "failed": "StopFailure hook (the CLI's words); API errors it retries, from its screen",
    "dialog": "trust dialog and not logged in, from its screen",
    "unreported": "a turn interrupted in its pane (Esc, or No in its dialog) fires no hook: only its screen tells",
}


PERMISSION_MODES = {
    "default": PermissionMode(says="its own default mode: edits and commands ask (podctl's tools never do)"),
    "ask": PermissionMode(("--permission-mode", "default"), "mode default: edits and commands ask"),
    "edits": PermissionMode(("--permission-mode", "acceptEdits"),
                            "mode acceptEdits: edits in its folders are allowed, commands ask"),
    "full": PermissionMode(("--permission-mode", "bypassPermissions"),
                           "mode bypassPermissions: nothing asks (refused as root unless IS_SANDBOX=1 is in its env)"),
}
PERMISSION_FLAGS = ("--permission-mode", "--dangerously-skip-permissions", "--allow-dangerously-skip-permissions")


class ClaudeAdapter(HookProtocol):
    hook_events = EVENTS
    screen_signs = SCREEN_SIGNS
    screen_working = "esc to interrupt"
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags = PERMISSION_FLAGS
    name = "claude"
    executable = "claude"
    tested_versions = ("2.1.328",)
    install_command = "npm install -g @anthropic-ai/claude-code@2.1.328"

    def config_dir(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / CONFIG_DIR

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        """Session transcripts, sub-agents' included (`projects/<dir>/<session>/subagents/*.jsonl`)."""
        return [UsageSource(agent_dir / CONFIG_DIR / "projects", "**/*.jsonl")]

    def usage_parser(self, state: dict[str, Any] | None = None) -> ClaudeUsage:
        return ClaudeUsage(dict(state or {}))

    def cache_dir(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / "claude-cache"

    def env_file(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / "bash-env.sh"

    def prepare(self, ctx: AgentContext) -> None:
        config = self.config_dir(ctx)
        config.mkdir(parents=True, exist_ok=True, mode=0o700)
        link_credentials(user_file(".claude", ".credentials.json"), config / ".credentials.json")
        state_file = config / ".claude.json"
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
        state["hasCompletedOnboarding"] = True
        state.setdefault("projects", {}).setdefault(str(ctx.workdir), {}).update(
            {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}
        )
        key = ctx.env.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_API_KEY")
        if key:
            approved = state.setdefault("customApiKeyResponses", {}).setdefault("approved", [])
            if key[-20:] not in approved:
                approved.append(key[-20:])
        state_file.write_text(json.dumps(state, indent=2))
        shim = ctx.shim_command()
        (ctx.agent_dir / "mcp.json").write_text(json.dumps(
            {"mcpServers": {"podctl": {"type": "stdio", "command": shim[0], "args": shim[1:]}}}, indent=2
        ))
        settings: dict[str, Any] = {
            "hooks": self.hook_config(ctx, timeout=10),
            "permissions": {"allow": [f"mcp__podctl__{tool}" for tool in TOOLS]},
            "disableDeepLinkRegistration": "disable",
        }
        if ctx.permissions == "full":
            settings["skipDangerousModePermissionPrompt"] = True  # the pod file chose it: no dialog asks again
        (ctx.agent_dir / "settings.json").write_text(json.dumps(settings, indent=2))
        self.cache_dir(ctx).mkdir(exist_ok=True, mode=0o700)
        self.env_file(ctx).write_text(self.bash_env(ctx))

    def bash_env(self, ctx: AgentContext) -> str:
        """The script Claude Code runs before each Bash command: the user's `XDG_CACHE_HOME`, then the
        user's own `CLAUDE_ENV_FILE`, which podctl's replaces."""
        return user_env_script(ctx, ("XDG_CACHE_HOME",), "CLAUDE_ENV_FILE", self.env_file(ctx))

    def launch(self, ctx: AgentContext) -> Launch:
        argv = [
            self.executable, "--mcp-config", str(ctx.agent_dir / "mcp.json"), "--strict-mcp-config",
            "--settings", str(ctx.agent_dir / "settings.json"),
        ]
        if ctx.model:
            argv += ["--model", ctx.model]
        argv += mode_argv(self, ctx)
        argv += list(ctx.args)
        env = {
            "ENABLE_TOOL_SEARCH": "false", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1", **ctx.env,
            "CLAUDE_CONFIG_DIR": str(self.config_dir(ctx)), "XDG_CACHE_HOME": str(self.cache_dir(ctx)),
            "CLAUDE_ENV_FILE": str(self.env_file(ctx)),
        }
        return Launch(argv=argv, env=env, cwd=ctx.workdir)


class ClaudeUsage(StatelessParser):
    """`type: assistant` lines carry their response's usage, repeated on one line per content block:
    the message id is the key, so the repeats count once. `input_tokens` excludes cache reads and
    writes; writes are counted as input."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        if line.get("type") != "assistant":
            return None
        message = obj(line.get("message"))
        usage = obj(message.get("usage"))
        key = message.get("id") or line.get("requestId")
        record = UsageRecord(
            key=str(key or where), model=str(message.get("model") or line.get("requestedModel") or "unknown"),
            ts=timestamp(line.get("timestamp"), time.time()),
            input=count(usage.get("input_tokens")) + count(usage.get("cache_creation_input_tokens")),
            cached=count(usage.get("cache_read_input_tokens")), output=count(usage.get("output_tokens")),
            reasoning=count(obj(usage.get("output_tokens_details")).get("thinking_tokens")),
        )
        return record if record.input or record.cached or record.output else None


ADAPTER = ClaudeAdapter()
