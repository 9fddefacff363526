"""The `claude` adapter (Claude Code 2.1.x).

Files podctl writes, all under the agent's folder (`.../agents/<name>/`; the user's `~/.claude`
and `~/.claude.json` are never edited):
- `claude-config/` is the CLI's `CLAUDE_CONFIG_DIR`: `.claude.json` marks onboarding done, the
  workdir's trust dialog accepted and, when `ANTHROPIC_API_KEY` is set, that key approved (so no
  first-run dialog stalls an unattended agent); `.credentials.json` is a symlink to the user's
  `~/.claude/.credentials.json` when it exists, so their login works;
- `mcp.json` (passed with `--mcp-config`, with `--strict-mcp-config`): the `podctl` MCP server;
- `settings.json` (passed with `--settings`): SessionStart, UserPromptSubmit, PostToolUse, Stop,
  SessionEnd hooks -> `podctl hook`, and `mcp__podctl__*` tools allowed without a prompt.

`ENABLE_TOOL_SEARCH=false` is set for the agent (unless its `env` says otherwise): Claude Code
2.1 otherwise defers MCP tools behind a search tool, and the seven podctl tools should be in
the model's hands from the first request.
"""

from __future__ import annotations

import os

from .output import HookProtocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from .adapter import AgentContext, Launch

TOOLS = ("tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents")


class ClaudeAdapter(HookProtocol):
    name = "claude"
    executable = "claude"
    tested_versions = ("2.1.328",)

    def config_dir(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / "claude-config"

    def prepare(self, ctx: AgentContext) -> None:
        import json

        from .adapter import link_credentials, user_file

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
        settings = {
            "hooks": self.hook_config(ctx.hook_command, timeout=10),
            "permissions": {"allow": [f"mcp__podctl__{tool}" for tool in TOOLS]},
        }
        (ctx.agent_dir / "settings.json").write_text(json.dumps(settings, indent=2))

    def launch(self, ctx: AgentContext) -> Launch:
        from .adapter import Launch

        argv = [
            self.executable, "--mcp-config", str(ctx.agent_dir / "mcp.json"), "--strict-mcp-config",
            "--settings", str(ctx.agent_dir / "settings.json"),
        ]
        if ctx.model:
            argv += ["--model", ctx.model]
        argv += list(ctx.args)
        env = {"ENABLE_TOOL_SEARCH": "false", **ctx.env, "CLAUDE_CONFIG_DIR": str(self.config_dir(ctx))}
        return Launch(argv=argv, env=env, cwd=ctx.workdir)


ADAPTER = ClaudeAdapter()
