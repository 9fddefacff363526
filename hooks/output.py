"""Hook output shapes shared by the CLIs that follow Claude Code's hook protocol (Claude Code,
Codex, Gemini CLI all accept these two). Standard library only."""

from __future__ import annotations

from podctl.broker.codec import dumps

from .hookio import HookResult


def additional_context(event_name: str, text: str | None) -> str:
    """Inject `text` into the model's context at this event (nothing when None)."""
    if not text:
        return ""
    return dumps({"hookSpecificOutput": {"hookEventName": event_name, "additionalContext": text}})


def continue_turn(text: str | None) -> str:
    """At turn end: keep the turn going with `text` as the next prompt (nothing when None)."""
    if not text:
        return ""
    return dumps({"decision": "block", "reason": text})


CLAUDE_STYLE_EVENTS = {
    "SessionStart": HookResult("session_start"),
    "UserPromptSubmit": HookResult("turn_start"),
    "PostToolUse": HookResult("tool_done"),
    "Stop": HookResult("turn_end", attention_only=True),
    "SessionEnd": HookResult("session_end", inject=False),
}
"""The event names Claude Code defined and Codex adopted."""


class HookProtocol:
    """The hook side of an adapter whose CLI speaks this protocol: `events` maps its native events
    to ours; at `turn_end_event` injecting means continuing the turn, elsewhere adding context."""

    events: dict[str, HookResult] = CLAUDE_STYLE_EVENTS
    turn_end_event = "Stop"
    wake_text = "You have new podctl messages (shown in your context). Handle them; answer asks with post_reply."

    def hook_config(self, hook_command, timeout: int, named: bool = False) -> dict[str, list[dict[str, object]]]:
        """The `hooks` settings block: one command handler per event, matching everything.

        `hook_command` is `AgentContext.hook_command`; `timeout` is in the CLI's own unit;
        `named` gives each handler a name (Gemini CLI shows and records hooks by name)."""
        import shlex

        def handler(event: str) -> dict[str, object]:
            entry: dict[str, object] = {"name": f"podctl-{event}"} if named else {}
            return {**entry, "type": "command", "command": shlex.join(hook_command(event)), "timeout": timeout}

        return {event: [{"matcher": "", "hooks": [handler(event)]}] for event in self.events}

    def hook_event(self, cli_event: str, payload: dict[str, object]) -> HookResult:
        return self.events.get(cli_event, HookResult(None, inject=False))

    def render(self, cli_event: str, payload: dict[str, object], text: str | None) -> str:
        if cli_event == self.turn_end_event:
            return continue_turn(text)
        if cli_event in self.events and self.events[cli_event].inject:
            return additional_context(cli_event, text)
        return ""
