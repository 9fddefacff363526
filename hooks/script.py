"""The `script` adapter: our deterministic agent (podctl.scriptagent), driven like any CLI.

It gets the same two things a real CLI gets: an MCP server entry (`podctl shim`) and hook
commands for its lifecycle events, written to `agent.json` in the agent's folder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from podctl.pods.script import USAGE_FILE, ScriptError, read_script_file

from .adapter import HOOKS_DIR, Adapter, AgentContext, HookEvent, Launch, PermissionMode
from .usage import StatelessParser, UsageRecord, UsageSource, count, timestamp

SCRIPTAGENT = HOOKS_DIR.parent / "scriptagent" / "fast.py"
"""The agent's entry: `python -I -S`, standard library only (it stands in for a CLI, and costs as little)."""

EVENTS = {
    "SessionStart": HookEvent("session_start", output="plain"),
    "TurnStart": HookEvent("turn_start", output="plain"),
    "AfterTool": HookEvent("tool_done", output="plain"),
    "TurnEnd": HookEvent("turn_end", inject=False),
    "SessionEnd": HookEvent("session_end", inject=False),
    "Permission": HookEvent("permission", inject=False, output="decision", hold=True),
    "Failure": HookEvent("failure", inject=False),
}
"""Its events; `Permission` and `Failure` are its script's `permission` and `fail` steps (a cheap
stand-in for a CLI's permission request and a turn ended by an API error)."""


ATTENTION = {
    "permission": "its script's permission steps, through a hook like Claude Code's; answered by podctl",
    "failed": "its script's fail steps",
}
PERMISSION_MODES = {
    "default": PermissionMode(says="its permission steps ask", quiet=True),
    "ask": PermissionMode(says="its permission steps ask"),
    "edits": PermissionMode(says="its permission steps ask"),
    "full": PermissionMode(says="its permission steps are allowed without asking"),
}


class ScriptAdapter(Adapter):
    name = "script"
    executable = sys.executable
    version_args: tuple[str, ...] = ()
    tested_versions = ("built-in",)
    wake_text = "podctl: new messages"
    takes_script = True
    hook_events = EVENTS
    attention = ATTENTION
    permission_modes = PERMISSION_MODES

    def config_file(self, ctx: AgentContext) -> Path:
        return ctx.agent_dir / "agent.json"

    def prepare(self, ctx: AgentContext) -> None:
        """Write agent.json; a script file is read here (YAML), so the agent reads only JSON."""
        config: dict[str, Any] = {
            "pod": ctx.pod,
            "agent": ctx.agent,
            "role": ctx.role,
            "workdir": str(ctx.workdir),
            "agent_dir": str(ctx.agent_dir),
            "script": ctx.script,
            "mcp": {"command": ctx.shim_command()},
            "hooks": {native: ctx.hook_command(how) for native, how in self.hook_events.items()},
            "permissions": ctx.permissions,
            "hold_timeout_s": ctx.hold_timeout_s,
        }
        if isinstance(ctx.script, str):
            try:
                config["script"] = read_script_file(ctx.workdir / ctx.script)
            except ScriptError as exc:
                config["script_error"] = str(exc)
        ctx.agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.config_file(ctx)
        path.write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
        path.chmod(0o600)

    def usage_files(self, agent_dir: Path) -> list[UsageSource]:
        """What its `usage` steps recorded (none unless the script has some: it uses no model)."""
        return [UsageSource(agent_dir, USAGE_FILE)]

    def usage_parser(self, state: dict[str, Any] | None = None) -> ScriptUsage:
        return ScriptUsage(dict(state or {}))

    def launch(self, ctx: AgentContext) -> Launch:
        return Launch(
            argv=[ctx.python, "-I", "-S", str(SCRIPTAGENT), str(self.config_file(ctx)), *ctx.args],
            env={**ctx.env, "PODCTL_POD": ctx.pod, "PODCTL_AGENT": ctx.agent},
            cwd=ctx.workdir,
        )


class ScriptUsage(StatelessParser):
    def feed(self, line: dict[str, Any], where: str) -> UsageRecord | None:
        if line.get("type") != "usage":
            return None
        return UsageRecord(
            key=str(line.get("id") or where), model=str(line.get("model") or "unknown"),
            ts=timestamp(line.get("ts"), time.time()), input=count(line.get("input")),
            cached=count(line.get("cached_input")), output=count(line.get("output")),
            reasoning=count(line.get("reasoning")),
        )


ADAPTER = ScriptAdapter()
