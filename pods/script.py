"""The script a `cli: script` agent plays (the `script:` field of a pod file): a reply template and the steps of its first turn.

```yaml
replies: "LGTM from {agent}: {text}"     # answers every ask ({agent}, {from}, {text}, {ask_id})
steps:
  - write: {path: src/app.py, text: "print('hi')\\n"}
  - tell: {to: reviewer, text: started, urgent: false}
  - ask: {to: reviewer, text: "review src/app.py", timeout: 120}
  - sleep: 0.5
  - say: "a line shown in the pane"
  - wait_for: go.flag          # until this file exists in the workdir (a long tool call; at most 120 s)
  - usage: {model: m, input: 1000, cached_input: 0, output: 200, reasoning: 0}   # record a model request's tokens
  - permission: {tool: Bash, detail: "touch build/x"}   # ask to run a tool, as a CLI does; the next step runs only if allowed
  - fail: "API Error: 401 invalid x-api-key"    # the turn ends with an error, as a CLI's does (the agent is failed)
```
A script agent uses no model: it reports no usage unless a `usage` step records some, as a real CLI
records its requests (so budgets can be tried without spending money).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PodctlError

STEP_KINDS = ("write", "tell", "ask", "sleep", "say", "wait_for", "usage", "permission", "fail")
USAGE_FILE = "script-usage.jsonl"
"""Where a script agent records its `usage` steps, in its agent folder (read like a CLI's session file)."""
USAGE_COUNTS = ("input", "cached_input", "output", "reasoning")
WAIT_FOR_S = 120.0
DEFAULT_REPLY = "Received by {agent}: {text}"


class ScriptError(PodctlError):
    """A script that cannot be played; `step` is the 0-based index of the bad step, if any."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class Step:
    kind: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Script:
    replies: str = DEFAULT_REPLY
    steps: list[Step] = field(default_factory=list)


def _step(index: int, raw: Any) -> Step:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ScriptError(f"step {index + 1}: write one of {', '.join(STEP_KINDS)} as a single-key mapping", step=index)
    (kind, value), = raw.items()
    if kind not in STEP_KINDS:
        raise ScriptError(f"step {index + 1}: unknown step {kind!r}; use one of {', '.join(STEP_KINDS)}", step=index)
    if kind == "sleep":
        if not isinstance(value, (int, float)) or value < 0:
            raise ScriptError(f"step {index + 1}: sleep takes a number of seconds", step=index)
        return Step(kind, {"seconds": float(value)})
    if kind in ("say", "fail"):
        return Step(kind, {"text": str(value)})
    if kind == "wait_for":
        if not isinstance(value, str) or not value:
            raise ScriptError(f"step {index + 1}: wait_for takes a file path (relative to the workdir)", step=index)
        return Step(kind, {"path": value})
    if not isinstance(value, dict):
        raise ScriptError(f"step {index + 1}: {kind} takes a mapping", step=index)
    needed = {"write": ("path", "text"), "tell": ("to", "text"), "ask": ("to", "text"), "usage": ("model",),
              "permission": ("tool", "detail")}[kind]
    missing = [k for k in needed if k not in value]
    if missing:
        raise ScriptError(f"step {index + 1}: {kind} needs {', '.join(missing)}", step=index)
    if kind == "usage":
        bad = [k for k in USAGE_COUNTS if not isinstance(value.get(k, 0), int) or value.get(k, 0) < 0]
        if bad or set(value) - {"model", *USAGE_COUNTS}:
            raise ScriptError(f"step {index + 1}: usage takes model and whole numbers of {', '.join(USAGE_COUNTS)}",
                              step=index)
    return Step(kind, dict(value))


def read_script_file(path: Path) -> Any:
    """The raw script in a YAML file. YAML is imported here only: the script agent, which runs
    without site-packages, is handed file scripts already read (hooks/script.py, when `up`
    prepares the agent: so a FIFO or a device put in the file's place is refused, never waited on)."""
    try:
        import yaml

        from .load import MAX_FILE_BYTES, read_regular
    except ImportError as exc:
        raise ScriptError(f"cannot read script {path}: PyYAML is not importable here ({exc})") from exc
    try:
        raw = read_regular(path, MAX_FILE_BYTES)
        if len(raw) > MAX_FILE_BYTES:
            raise ScriptError(f"cannot read script {path}: larger than {MAX_FILE_BYTES:,} bytes")
        return yaml.safe_load(raw.decode("utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ScriptError(f"cannot read script {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def load_script(raw: Any, base: Path) -> Script:
    """A script from the pod file's inline mapping, or from a YAML file path relative to `base`."""
    if raw is None:
        return Script()
    if isinstance(raw, str):
        raw = read_script_file((base / raw).resolve())
    errors = script_errors(raw)
    if errors:
        raise errors[0]
    steps = [_step(i, s) for i, s in enumerate(raw.get("steps") or [])]
    return Script(replies=str(raw.get("replies") or DEFAULT_REPLY), steps=steps)


def script_errors(raw: Any) -> list[ScriptError]:
    """Every error of an inline script (pod file validation reports them all; load_script the first)."""
    if not isinstance(raw, dict):
        return [ScriptError("a script is a mapping with `replies` and `steps`")]
    errors: list[ScriptError] = []
    unknown = set(raw) - {"replies", "steps"}
    if unknown:
        errors.append(ScriptError(f"unknown script key(s): {', '.join(sorted(map(str, unknown)))}; use replies and steps"))
    steps = raw.get("steps") or []
    if not isinstance(steps, list):
        return [*errors, ScriptError("steps must be a list")]
    for i, step in enumerate(steps):
        try:
            _step(i, step)
        except ScriptError as exc:
            errors.append(exc)
    return errors
