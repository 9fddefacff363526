"""The hook protocol Claude Code defined and Codex and Gemini CLI follow: command hooks per
event, `hookSpecificOutput.additionalContext` to add to the model's context, and at turn end
`{"decision": "block", "reason": ...}` to keep the turn going."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .adapter import Adapter, AgentContext, HookEvent


def hook_table(session_start: str, turn_start: str, tool_done: str, turn_end: str, session_end: str) -> dict[str, HookEvent]:
    """The events of a CLI of this protocol, by their native names."""
    return {
        session_start: HookEvent("session_start", output=f"context:{session_start}"),
        turn_start: HookEvent("turn_start", output=f"context:{turn_start}"),
        tool_done: HookEvent("tool_done", output=f"context:{tool_done}"),
        turn_end: HookEvent("turn_end", attention_only=True, output="continue"),
        session_end: HookEvent("session_end", inject=False),
    }


CLAUDE_STYLE_EVENTS = hook_table("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd")
"""The event names Claude Code defined and Codex adopted."""
PERMISSION_REQUEST = HookEvent("permission", inject=False, output="decision:PermissionRequest", hold=True)
"""Claude Code's and Codex's PermissionRequest: the agent is blocked until podctl, the pane or an
approver answers; the hook waits for podctl's answer and prints it (hooks/path/render.py)."""


class HookProtocol(Adapter):
    """The hook side of an adapter whose CLI speaks this protocol."""

    hook_events: Mapping[str, HookEvent] = CLAUDE_STYLE_EVENTS
    wake_text = "You have new podctl messages (shown in your context). Handle them; answer asks with post_reply."

    def hook_config(
        self, ctx: AgentContext, timeout: int, named: bool = False, per_second: int = 1
    ) -> dict[str, list[dict[str, Any]]]:
        """The `hooks` settings block: one command handler per event, matching everything.

        `timeout` is in the CLI's own unit (`per_second` of them make a second); a holding hook's is
        `ctx.hold_timeout_s`. `named` gives each handler a name (Gemini CLI shows and records hooks by name)."""

        def handler(native: str, how: HookEvent) -> dict[str, Any]:
            entry: dict[str, Any] = {"name": f"podctl-{native}"} if named else {}
            limit = ctx.hold_timeout_s * per_second if how.hold else timeout
            return {**entry, "type": "command", "command": ctx.hook_shell(how), "timeout": limit}

        return {native: [{"matcher": "", "hooks": [handler(native, how)]}] for native, how in self.hook_events.items()}
