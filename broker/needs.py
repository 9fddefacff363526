"""What holds an agent (a `Need`: blocked or failed, and why), the permission requests it makes, and
how the CLIs' event facts read as one: the attention desk's vocabulary (broker/attention.py)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import AgentState, AttentionKind, Decision, DecisionAnswer

WATCH_S = 1.0
"""How often screens are read (only those an event cannot speak for)."""
SILENT_S = 2.0
"""A busy agent with no hook for this long may be stuck on something only its screen shows."""
JUST_ENDED_S = 3.0
"""An agent whose turn ended this recently may show an error its hooks did not carry."""
LOOK_TIMEOUT_S = 3.0
CLEAR_LOOKS = 2
"""A sign must be gone from this many reads in a row before it counts as gone (no flicker)."""
EPISODE_GAP_S = 30.0
"""The same need coming back within this long is the same episode: no new line, no new notice."""
ANSWERED_KEPT_S = 600.0
"""A late answer is told who answered first, for this long."""
DETAIL_CHARS = 8192
REASON_CHARS = 2000
NOTICE_TASKS = 4
"""Notify commands running at once; more are skipped (logged), never queued without bound."""
QUESTION_TOOLS = frozenset({"AskUserQuestion", "ask_user", "question", "request_user_input"})
"""Tools whose "permission" is a question to the user: deny lets the model decide itself; approve cannot answer."""
DECIDING_WORDS: dict[str, Decision] = {"allow": "allow", "always": "always", "deny": "deny"}


@dataclass(frozen=True)
class MemberView:
    """What the desk reads of a member to decide whether its screen is worth a look."""

    cli: str
    state: str
    state_ts: float
    last_activity: float | None
    tools_ready: bool


@dataclass
class Need:
    """Why an agent is blocked or failed (status's `blocked` / `failed`)."""

    state: AgentState
    since: float
    kind: AttentionKind | None = None
    tool: str = ""
    detail: str = ""
    reason: str = ""
    """A failure in the CLI's own words."""
    source: str = "event"
    """`event` (a hook said so) or `screen` (its screen shows it)."""
    request: int | None = None
    answerable: bool = False
    """podctl can answer it now (a hook waits for the answer)."""
    how: str = ""
    """How a person answers it when podctl cannot."""
    awaiting: str | None = None
    """An approver it was sent to (None: the person)."""
    episode: float = 0.0
    notified: bool = False

    def key(self) -> tuple[str, str, str, str]:
        return (self.state, self.kind or "", self.tool, self.detail or self.reason)

    def same_episode(self, other: Need) -> bool:
        """`other` goes on what this one started (its screen changed its words; the same request)."""
        if (self.state, self.kind, self.source, self.request) != (other.state, other.kind, other.source, other.request):
            return False
        return self.source == "screen" or self.key() == other.key()

    def as_json(self) -> dict[str, Any]:
        """The agent's `blocked` or `failed` in `status`."""
        if self.state == "failed":
            return {"reason": self.reason, "since": self.since, "source": self.source}
        out: dict[str, Any] = {
            "kind": self.kind, "tool": self.tool or None, "detail": self.detail, "since": self.since,
            "answerable": self.answerable, "request": self.request, "source": self.source,
        }
        if self.how:
            out["how"] = self.how
        if self.awaiting:
            out["awaiting"] = self.awaiting
        return out

    def stored(self, base: str) -> dict[str, Any]:
        return {**asdict(self), "base": base}

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> tuple[Need, str] | None:
        try:
            fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            need = cls(**fields)
        except (TypeError, KeyError):
            return None
        if need.state not in ("blocked", "failed"):
            return None
        # The hook that waited for an answer did not survive the broker: its CLI's own dialog answers.
        need.answerable, need.request = False, None
        if need.state == "blocked" and need.kind == "permission" and need.source == "event":
            need.how = need.how or "the broker restarted while it waited: answer in its pane"
        return need, str(data.get("base") or "busy")


@dataclass
class Request:
    """A permission request a hook holds for an answer."""

    id: int
    agent: str
    kind: AttentionKind
    tool: str
    detail: str
    since: float
    holding: bool
    answer: asyncio.Future[DecisionAnswer]
    settled: str = ""
    """How it ended without podctl's answer: answered in the pane, the hook gone."""
    decided: str = ""
    """For a late answer: "allowed by user", "answered in its pane"..."""
    ended: float = 0.0
    approval_ask: int | None = None
    timer: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass
class Looks:
    absent: int = 0
    seen_dialog: bool = False


class AnswerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def describe(tool: str, tool_input: Any) -> str:
    """What a person needs to see of a tool call: the command, the file, the question."""
    if isinstance(tool_input, str):
        return tool_input[:DETAIL_CHARS]
    if not isinstance(tool_input, dict):
        return ""
    for key in ("command", "cmd", "commands", "file_path", "filePath", "path", "url", "query", "pattern"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value[:DETAIL_CHARS]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return " ".join(value)[:DETAIL_CHARS]
    questions = tool_input.get("questions")
    if isinstance(questions, list) and questions and isinstance(questions[0], dict):
        return str(questions[0].get("question") or "")[:DETAIL_CHARS]
    return json.dumps(tool_input, ensure_ascii=False)[:DETAIL_CHARS]


def text_of(value: Any, limit: int = DETAIL_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def from_notification(facts: dict[str, Any], now: float) -> Need | bool | None:
    """What a notification means: a Need, False for "the CLI waits at its prompt" (clears a
    blocked agent), None for nothing podctl shows."""
    kind = text_of(facts.get("notification_type"), 64)
    message = text_of(facts.get("message"))
    if kind == "idle_prompt":
        return False
    if kind == "permission_prompt":
        tool, detail = permission_prompt(message)
        return Need("blocked", now, "permission", tool=tool, detail=detail, how="answer in its pane")
    if kind in ("elicitation_dialog", "elicitation_url_dialog", "question"):
        return Need("blocked", now, "question", tool=text_of(facts.get("tool_name"), 200), detail=message,
                    how="answer in its pane")
    if kind == "ToolPermission":
        details = facts.get("details") if isinstance(facts.get("details"), dict) else {}
        assert isinstance(details, dict)
        detail = next((text_of(details.get(k)) for k in ("command", "filePath", "fileName", "prompt", "toolName")
                       if text_of(details.get(k))), message)
        named = {"exec": "Shell", "edit": "Edit", "info": "WebFetch"}.get(text_of(details.get("type"), 16))
        tool = named or text_of(details.get("toolName") or details.get("title"), 200)
        return Need("blocked", now, "permission", tool=tool, detail=detail,
                    how="its CLI offers no way to answer from outside: answer in its pane")
    return None


def permission_prompt(message: str) -> tuple[str, str]:
    """The tool and detail of a permission prompt's message: Claude Code's and Qwen Code's "... needs your
    permission to use Bash" (the detail is the message), Copilot CLI's "Run command: touch x"."""
    if " to use " in message:
        return message.rsplit(" to use ", 1)[1], message
    what, sep, detail = message.partition(": ")
    return (what, detail) if sep and detail and len(what) <= 40 else ("", message)


NOT_THE_AGENTS = ("tool_execution", "user_input")
"""Copilot CLI's errorOccurred contexts that are one tool's or one input's error, not the agent's: the
model reads a failed tool's error itself."""


def from_failure(facts: dict[str, Any], now: float) -> Need | None:
    """The agent cannot work, in its CLI's words (None: the error was one tool's, not the agent's)."""
    if facts.get("errorContext") in NOT_THE_AGENTS:
        return None
    error = facts.get("error")
    if isinstance(error, dict):  # Copilot CLI: {"message", "name", "stack"}
        error = error.get("message")
    reason = (text_of(facts.get("last_assistant_message"), REASON_CHARS) or text_of(facts.get("error_details"), REASON_CHARS)
              or text_of(facts.get("message"), REASON_CHARS) or text_of(error, REASON_CHARS)
              or "its turn ended with an error")
    return Need("failed", now, reason=reason)


def first_word_decision(text: str) -> tuple[Decision, str]:
    """An approver's reply: its first word decides; anything else denies, with the reply as the reason."""
    found = re.match(r"\W*(\w+)\W*(.*)", text, re.DOTALL)
    word = found.group(1).lower() if found else ""
    if word in DECIDING_WORDS:
        return DECIDING_WORDS[word], (found.group(2).strip() if found else "")
    return "deny", text.strip()


def summary(tool: str, detail: str) -> str:
    """`Bash  touch build/x` (one line: the detail's first line, cut)."""
    line = detail.strip().split("\n", 1)[0]
    line = line[:200] + ("…" if len(line) > 200 or "\n" in detail.strip() else "")
    return f"{tool}  {line}" if tool else line
