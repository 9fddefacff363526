"""Hook output shapes shared by the CLIs that follow Claude Code's hook protocol (Claude Code,
Codex, Gemini CLI all accept these two). Standard library only."""

from __future__ import annotations

from podctl.broker.codec import dumps


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
