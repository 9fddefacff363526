"""The shapes of a hook's answer on stdout, by the name the hook command gives (`--output`).

- `context:EVENT`: `{"hookSpecificOutput": {"hookEventName": EVENT, "additionalContext": TEXT}}`,
  the protocol Claude Code defined and Codex and Gemini CLI follow: TEXT joins the model's context;
- `continue`: `{"decision": "block", "reason": TEXT}`: at turn end, keep the turn going with TEXT;
- `plain`: `{"additionalContext": TEXT}` (the script agent);
- `none`: nothing.

Nothing is printed when there is nothing to inject.
"""

from __future__ import annotations

from podctl.broker.codec import dumps

OUTPUTS = ("none", "plain", "continue", "context:EVENT")


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
