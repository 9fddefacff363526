"""A minimal podctl adapter, written the way a third party writes one (docs/adapters.md).

`cli: echo` runs podctl's own script agent under another name: it answers every ask with
"echo: <the ask>". A real adapter would launch its CLI instead; everything else is the same:
the files the CLI needs (`prepare`), its command line (`launch`), and what each of its native
hook events means to podctl (`hook_events`). Its class inherits `Adapter`, which declares every
member with its type and every optional one with its default (podctl ships `py.typed`: mypy checks
an adapter against it, and refuses one that lacks a required member).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from podctl.hooks.adapter import Adapter, AgentContext, HookEvent, Launch

EVENTS = {
    # native event: podctl's event, and how the hook answers (see hooks/path/render.py)
    "SessionStart": HookEvent("session_start", output="plain"),
    "TurnStart": HookEvent("turn_start", output="plain"),
    "AfterTool": HookEvent("tool_done", output="plain"),
    "TurnEnd": HookEvent("turn_end", inject=False),
    "SessionEnd": HookEvent("session_end", inject=False),
}


class EchoAdapter(Adapter):
    name = "echo"
    executable = sys.executable
    """Looked up on PATH by `up` and `doctor` (which runs it with `version_args`, by default `--version`)."""
    tested_versions = ("Python 3",)
    wake_text = "podctl: new messages"
    """Typed into an idle agent's pane (then Enter) to start a turn. Never message content."""
    hook_events = EVENTS

    def config_file(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / "echo.json"

    def prepare(self, ctx: AgentContext) -> None:
        """Write what the CLI reads, in the agent's own folder only: its MCP server and its hooks."""
        config = {
            "pod": ctx.pod, "agent": ctx.agent, "role": ctx.role, "workdir": str(ctx.workdir),
            "agent_dir": str(ctx.agent_dir), "script": {"replies": "echo: {text}"},
            "mcp": {"command": ctx.shim_command()},
            "hooks": {native: ctx.hook_command(how) for native, how in self.hook_events.items()},
        }
        path = self.config_file(ctx)
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        path.chmod(0o600)

    def launch(self, ctx: AgentContext) -> Launch:
        return Launch(
            argv=[ctx.python, "-m", "podctl.scriptagent", str(self.config_file(ctx)), *ctx.args],
            env=dict(ctx.env), cwd=ctx.workdir,
        )


ADAPTER = EchoAdapter()
