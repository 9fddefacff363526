"""The `script` adapter: our deterministic agent (podctl.scriptagent), driven like any CLI.

It gets the same two things a real CLI gets: an MCP server entry (`podctl shim`) and hook
commands for its lifecycle events, written to `agent.json` in the agent's folder.
"""

from __future__ import annotations



from podctl.broker.codec import dumps

from .hookio import HookResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pathlib import Path

    from .adapter import AgentContext, Launch

EVENTS = {
    "SessionStart": ("session_start", True),
    "TurnStart": ("turn_start", True),
    "AfterTool": ("tool_done", True),
    "TurnEnd": ("turn_end", False),
    "SessionEnd": ("session_end", False),
}


class ScriptAdapter:
    name = "script"
    executable = "python3"
    wake_text = "podctl: new messages"
    tested_versions = ("built-in",)

    def config_file(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / "agent.json"

    def prepare(self, ctx: AgentContext) -> None:
        import json

        config = {
            "pod": ctx.pod,
            "agent": ctx.agent,
            "role": ctx.role,
            "workdir": str(ctx.workdir),
            "agent_dir": str(ctx.agent_dir),
            "script": ctx.script,
            "mcp": {"command": ctx.shim_command()},
            "hooks": {event: ctx.hook_command(event) for event in EVENTS},
        }
        ctx.agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.config_file(ctx)
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        path.chmod(0o600)

    def launch(self, ctx: AgentContext) -> Launch:
        from .adapter import Launch

        return Launch(
            argv=[ctx.python, "-m", "podctl.scriptagent", str(self.config_file(ctx)), *ctx.args],
            env={**ctx.env, "PODCTL_POD": ctx.pod, "PODCTL_AGENT": ctx.agent},
            cwd=ctx.workdir,
        )

    def hook_event(self, cli_event: str, payload: dict[str, Any]) -> HookResult:
        event, inject = EVENTS.get(cli_event, (None, False))
        return HookResult(event=event, inject=inject)

    def render(self, cli_event: str, payload: dict[str, Any], text: str | None) -> str:
        return dumps({"additionalContext": text}) if text else ""


ADAPTER = ScriptAdapter()
