"""The shapes of a hook's answer on stdout, by the name the hook command gives (`--output`).

- `context:EVENT`: `{"hookSpecificOutput": {"hookEventName": EVENT, "additionalContext": TEXT}}`,
  the protocol Claude Code defined and Codex and Gemini CLI follow: TEXT joins the model's context;
- `continue`: `{"decision": "block", "reason": TEXT}`: at turn end, keep the turn going with TEXT;
- `plain`: `{"additionalContext": TEXT}` (the script agent);
- `none`: nothing.

Nothing is printed when there is nothing to inject.

The answer to a permission request (`render_decision`), when one came in time:
- `decision:EVENT`: `{"hookSpecificOutput": {"hookEventName": EVENT, "decision": {"behavior": "allow"}}}`,
  or `"deny"` with a `message` the model reads: Claude Code's and Codex's PermissionRequest output (no
  `updatedInput`, `updatedPermissions` or `interrupt`, which Codex refuses; an `always` is kept by
  podctl, not handed to the CLI);
- `decision`: `{"decision": "allow" | "always" | "deny", "message": TEXT}` (podctl's OpenCode plugin, the script agent).
Nothing is printed without an answer: the CLI asks its user itself.
"""

from __future__ import annotations

from podctl.broker.codec import dumps

OUTPUTS = ("none", "plain", "continue", "context:EVENT", "decision", "decision:EVENT")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from podctl.broker.records import DecisionAnswer, Permission


def render(output: str, text: str | None) -> str:
    if not text or output == "none":
        return ""
    if output == "continue":
        return dumps({"decision": "block", "reason": text})
    if output == "plain":
        return dumps({"additionalContext": text})
    if output.startswith("context:"):
        return dumps({"hookSpecificOutput": {"hookEventName": output[8:], "additionalContext": text}})
    raise ValueError(f"unknown hook output {output!r} (one of {', '.join(OUTPUTS)})")


def render_decision(output: str, answer: Permission | DecisionAnswer) -> str:
    """The answer to a permission request in the CLI's shape ("" without one)."""
    decision = answer.get("decision")
    if decision not in ("allow", "always", "deny"):
        return ""
    message = str(answer.get("message") or "")
    if output == "decision":
        return dumps({"decision": decision, "message": message})
    if output.startswith("decision:"):
        verdict: dict[str, Any] = {"behavior": "deny", "message": message} if decision == "deny" else {"behavior": "allow"}
        return dumps({"hookSpecificOutput": {"hookEventName": output[9:], "decision": verdict}})
    raise ValueError(f"unknown hook output {output!r} for a decision (decision or decision:EVENT)")
