"""The `gemini` adapter (Gemini CLI 0.61.0; facts in shared/reference/gemini.md).

Files podctl writes, all under the agent's folder (`.../agents/<name>/gemini-home`, the CLI's
`GEMINI_CLI_HOME`; the user's `~/.gemini` is never edited):
- `.gemini/settings.json`: auth type (API key when `GEMINI_API_KEY` is set, else the user's
  Google login), no auto-update, no usage statistics, the `podctl` MCP server with `trust: true`,
  and SessionStart, BeforeAgent, AfterTool, AfterAgent, SessionEnd hooks -> `podctl hook`;
- `.gemini/trustedFolders.json`: the workdir (Gemini runs no hooks and no stdio MCP server in an
  untrusted folder); `GEMINI_CLI_TRUST_WORKSPACE=true` is also set in its environment;
- `.gemini/oauth_creds.json`, `google_accounts.json`: symlinks to the user's, when they exist.

The shim gets its identity from `--socket` and `--token-file` on its command line: Gemini strips variables whose
names contain TOKEN or KEY from an MCP server's environment, so no token travels by env.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .adapter import AgentContext, HookEvent, Launch, PermissionMode, ScreenSign, link_credentials, mode_argv, user_file
from .protocol import HookProtocol, hook_table
from .usage import StatelessParser, UsageRecord, UsageSource, count, obj, timestamp

HOME_DIR = "gemini-home"

EVENTS = {
    **hook_table("SessionStart", "BeforeAgent", "AfterTool", "AfterAgent", "SessionEnd"),
    "Notification": HookEvent("notification", inject=False),
}
"""Gemini CLI's events; its Notification (ToolPermission) says a confirmation is on screen (it can
only be observed: no hook can answer it)."""


SCREEN_SIGNS = (
    ScreenSign(r"✕ \[API Error: (?P<reason>.+)\]", "failed", says="API Error: {reason}", last_lines=9),
    ScreenSign(r"Trying to reach (?P<model>\S+) \(Attempt (?P<n>\d+)/(?P<of>\d+)\)", "failed",
               says="cannot reach {model} (attempt {n} of {of})"),
    ScreenSign(r"Enter the authorization code:?", "blocked", "dialog",
               says="a login: its Google sign-in waits for an authorization code"),
    ScreenSign(r"How would you like to authenticate|Waiting for auth", "blocked", "dialog", says="a login dialog: {0}"),
    ScreenSign(r"Do you trust the files in this folder\?|Do you trust this folder\?", "blocked", "dialog",
               says="a trust dialog: {0}"),
    ScreenSign(r"Allow execution of.*|Apply this change\?|Allow execution of MCP tool.*|Do you want to proceed\?",
               "blocked", "permission", says="its confirmation: {0}"),
)
"""What Gemini CLI shows only on its screen: an API error (its hooks end the turn without it), a
model it retries, its Google sign-in waiting for a code (issue 20: it read as stopped), a trust
dialog, and its confirmations (to see one answered in the pane)."""

ATTENTION = {
    "permission": "Notification (ToolPermission) hook, at once; cannot be answered from outside: answer in its pane",
    "question": "ask_user goes through the same confirmation (observed, answered in its pane)",
    "failed": "API errors, from its screen (a model server it cannot reach at all it retries silently for minutes)",
    "dialog": "its Google sign-in and trust dialogs, from its screen",
    "unreported": "an unreachable model server while it retries silently (no event, nothing on screen)",
}

PERMISSION_MODES = {
    "default": PermissionMode(says="its own default approval mode: edits and commands ask"),
    "ask": PermissionMode(("--approval-mode", "default"), "approval mode default: edits and commands ask"),
    "edits": PermissionMode(("--approval-mode", "auto_edit"), "approval mode auto_edit: edits are allowed, commands ask"),
    "full": PermissionMode(("--approval-mode", "yolo"), "approval mode yolo: nothing asks"),
}
PERMISSION_FLAGS = ("--approval-mode", "-y", "--yolo")


class GeminiAdapter(HookProtocol):
    hook_events = EVENTS
    screen_signs = SCREEN_SIGNS
    screen_working = "esc to cancel"
    attention = ATTENTION
    permission_modes = PERMISSION_MODES
    permission_flags = PERMISSION_FLAGS
    name = "gemini"
    executable = "gemini"
    tested_versions = ("0.61.0",)
    install_command = "npm install -g @google/gemini-cli@0.61.0"

    def home(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / HOME_DIR

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        """Chats: `.gemini/tmp/<project>/chats/*.jsonl` (sub-agents' in folders below)."""
        return [UsageSource(agent_dir / HOME_DIR / ".gemini" / "tmp", "*/chats/**/*.jsonl")]

    def usage_parser(self, state: dict[str, Any] | None = None) -> GeminiUsage:
        return GeminiUsage(dict(state or {}))

    def prepare(self, ctx: AgentContext) -> None:
        config = self.home(ctx) / ".gemini"
        config.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("oauth_creds.json", "google_accounts.json"):
            link_credentials(user_file(".gemini", name), config / name)
        api_key = "GEMINI_API_KEY" in ctx.env or "GEMINI_API_KEY" in os.environ
        shim = ctx.shim_command()
        settings = {
            "security": {
                "auth": {"selectedType": "gemini-api-key" if api_key else "oauth-personal"},
                "folderTrust": {"enabled": True},
            },
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
            "ui": {"theme": "Default", "errorVerbosity": "full"},
            "mcpServers": {"podctl": {"command": shim[0], "args": shim[1:], "trust": True, "timeout": 120_000}},
            "hooks": self.hook_config(ctx, timeout=10_000, named=True, per_second=1000),
        }
        if ctx.model:
            settings["model"] = {"name": ctx.model}
        (config / "settings.json").write_text(json.dumps(settings, indent=2))
        (config / "trustedFolders.json").write_text(json.dumps({str(ctx.workdir): "TRUST_FOLDER"}, indent=2))

    def launch(self, ctx: AgentContext) -> Launch:
        # In a CI environment (CI=true) Gemini CLI runs headless and exits: the pane must stay interactive.
        argv = ["env", "-u", "CI", "-u", "CONTINUOUS_INTEGRATION", self.executable]
        if ctx.model:
            argv += ["-m", ctx.model]
        argv += mode_argv(self, ctx)
        argv += list(ctx.args)
        env = {**ctx.env, "GEMINI_CLI_HOME": str(self.home(ctx)), "GEMINI_CLI_TRUST_WORKSPACE": "true"}
        return Launch(argv=argv, env=env, cwd=ctx.workdir)


class GeminiUsage(StatelessParser):
    """`type: gemini` records carry `tokens`; one with tool calls is appended twice with the same
    id (the key). `input` includes `cached`, `output` excludes `thoughts`."""

    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        if line.get("type") != "gemini":
            return None
        tokens = obj(line.get("tokens"))
        cached, thoughts = count(tokens.get("cached")), count(tokens.get("thoughts"))
        record = UsageRecord(
            key=str(line.get("id") or where), model=str(line.get("model") or "unknown"),
            ts=timestamp(line.get("timestamp"), time.time()),
            input=max(0, count(tokens.get("input")) - cached), cached=cached,
            output=count(tokens.get("output")) + thoughts, reasoning=thoughts,
        )
        return record if record.input or record.cached or record.output else None


ADAPTER = GeminiAdapter()
