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

from .adapter import AgentContext, HookEvent, Launch, link_credentials, user_file
from .protocol import HookProtocol, hook_table
from .usage import StatelessParser, UsageRecord, UsageSource, count, obj, timestamp

HOME_DIR = "gemini-home"

EVENTS = {
    **hook_table("SessionStart", "BeforeAgent", "AfterTool", "AfterAgent", "SessionEnd"),
    "Notification": HookEvent("notification", inject=False),
}
"""Gemini CLI's events; its Notification (ToolPermission) says a confirmation is on screen (it can
only be observed: no hook can answer it)."""


class GeminiAdapter(HookProtocol):
    hook_events = EVENTS
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
