"""The wire protocol's data as types: every vocabulary once, and the records operations answer.

Standard library only. What crosses the socket is JSON, so a record is a `TypedDict` (the JSON object
as it is, no conversion); wire.py's docstring says what each field means. The fenced hook path and the
relay import this module only under `TYPE_CHECKING` (their start-up is their cost). The clients'
`call` is overloaded per operation on these (wire.py `Client`, client.py `AsyncClient`), so a
renamed field fails the type check, not a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from podctl.pods.usage import UsageTotals as UsageTotals  # noqa: PLC0414 - a record of the wire, defined where usage is

HookEventName = Literal[
    "session_start", "turn_start", "tool_done", "turn_end", "session_end", "permission", "notification", "failure",
]
"""podctl's hook events (wire.HOOK_EVENTS)."""
AgentState = Literal["busy", "idle", "stopped", "blocked", "failed"]
"""An agent's state (wire.AGENT_STATES); an agent of another site not heard from yet is `unknown`."""
ShownState = AgentState | Literal["unknown", "human"]
"""A state as a message's recipient list shows it: the user is `human`."""
AttentionKind = Literal["permission", "question", "dialog"]
Decision = Literal["allow", "always", "deny"]
MessageKind = Literal["tell", "ask", "reply", "notice", "log"]
DeliveryState = Literal["queued", "injected", "read"]
AskState = Literal["replied", "waiting", "timeout", "expired", "pending"]
"""What `wait_for_reply` / `check_replies` say of an ask (`pending`: the MCP tool's own, past its cap)."""
AskMode = Literal["all", "first"]
EventName = Literal["message", "delivery", "state", "attention", "tools", "wake", "usage", "gap", "site"]
ErrorCode = Literal[
    "bad_request", "protocol_version", "auth", "forbidden", "unknown_agent", "unknown_ask", "not_asked", "empty_text",
    "too_large", "conflict", "busy", "internal", "not_waiting", "cannot_answer",
]
OpName = Literal[
    "hello", "tell", "ask", "wait_for_reply", "check_replies", "read_messages", "post_reply", "list_agents", "hook",
    "set_state", "history", "status", "mcp", "ack_injected", "await_decision", "subscribe", "usage_report",
    "usage_cursors", "usage", "asks", "sync", "prune", "log", "handoff", "rules", "reset_rule", "approve", "deny",
    "bridge_pull", "bridge_sent", "bridge_receive", "bridge_link",
]
"""Every operation (the broker's op table; tests/test_architecture.py compares them). Each answers a
record below (`Calls` says which)."""

Message = TypedDict("Message", {
    "id": int, "ts": float, "from": str, "to": list[str], "kind": MessageKind, "text": str, "ask_id": int | None,
    "urgent": bool, "followup": bool, "target": str | None, "origin": str | None,
    "answered": NotRequired[bool], "delivery": NotRequired[list["Delivery"]], "too_large": NotRequired[int],
})
"""A stored message (read_messages, history, events, hook injections)."""


class Delivery(TypedDict):
    to: str
    state: DeliveryState
    queued_at: float
    injected_at: float | None
    read_at: float | None


class SiteFields(TypedDict, total=False):
    """What a pod across machines adds about a member (docs/sites.md): an agent of another site is
    `remote`, with its state and unread count as its site reported them at `reported_at`."""

    site: str
    remote: bool
    reported_at: float | None
    unread: int


class Where(TypedDict, total=False):
    """The folder an agent works in, and its worktree's branch."""

    workdir: str
    branch: str | None


class Recipient(SiteFields):
    name: str
    state: str
    """A ShownState."""
    over_budget: NotRequired[str]


class Hello(TypedDict):
    pod: str
    protocol: int
    broker_pid: int
    agent: str
    limits: dict[str, int]


class Told(TypedDict):
    message_id: int
    status: Literal["queued"]
    recipients: list[Recipient]


class Asked(Told):
    ask_id: int
    mode: AskMode


Reply = TypedDict("Reply", {"from": str, "text": str, "message_id": int, "ts": float})
OpenAsk = TypedDict("OpenAsk", {"ask_id": int, "from": str})


class AskStatus(TypedDict):
    ask_id: int
    status: AskState
    mode: AskMode
    replies: list[Reply]
    waiting_on: list[str]
    route: NotRequired[str]
    delivery: NotRequired[list[Delivery]]


class MessagePage(TypedDict):
    """A page of messages: read on from `next` while `more`."""

    messages: list[Message]
    next: int
    more: bool


class Replied(TypedDict):
    message_id: int
    ask_id: int
    followup: bool
    status: Literal["queued"]
    to: list[str]
    note: NotRequired[str]
    open_asks: NotRequired[list[OpenAsk]]


Route = TypedDict("Route", {"name": str, "to": list[str], "mode": AskMode, "timeout": str, "from": list[str] | None})


class TeamMember(SiteFields, Where):
    """An agent as `list_agents` shows it to its team."""

    name: str
    cli: str
    role: str
    state: str
    """An AgentState, or `unknown` (an agent of another site not heard from yet)."""
    you: bool


class Agents(TypedDict):
    pod: str
    agents: list[TeamMember]
    routes: list[Route]


class Permission(TypedDict):
    """A permission request's id, and podctl's answer when it gave one at once."""

    id: int
    decision: Decision | None
    message: NotRequired[str]


class HookAnswer(TypedDict):
    state: str
    """An AgentState."""
    claim: str | None
    messages: list[Message]
    too_large: list[dict[str, Any]]
    more: int
    context: NotRequired[dict[str, Any]]
    open_asks: NotRequired[list[Message]]
    request: NotRequired[Permission]


class AgentStatus(TypedDict):
    """An agent's row of `status`, of a running pod or (fewer fields) of one that is down."""

    name: str
    cli: str
    role: str
    state: str
    """An AgentState, or `unknown` (an agent of another site not heard from yet)."""
    state_ts: float | None
    unread: int
    last_wake: str | None
    last_wake_ts: float | None
    tools_ready: bool
    last_activity: NotRequired[float | None]
    handed_off_to: NotRequired[str | None]
    waking: NotRequired[bool]
    usage: NotRequired[UsageTotals | None]
    over_budget: NotRequired[str | None]
    leaving: NotRequired[bool]
    starting: NotRequired[bool]
    blocked: NotRequired[dict[str, Any]]
    failed: NotRequired[dict[str, Any]]
    site: NotRequired[str]
    remote: NotRequired[bool]
    reported_at: NotRequired[float | None]


class Status(TypedDict):
    pod: str
    pod_file: str | None
    last_message_id: int | None
    broker_pid: int
    started: float
    agents: list[AgentStatus]
    routes: list[Route]
    pending_deliveries: dict[str, int]
    usage: UsageTotals | None
    budget: dict[str, Any]
    sites: NotRequired[dict[str, Any]]


class StateSet(TypedDict):
    name: str
    state: AgentState


class McpOpened(TypedDict):
    mcp: bool
    session: str
    wait_cap_ms: int


class Injected(TypedDict):
    injected: int


class DecisionAnswer(TypedDict, total=False):
    """What a permission hook waiting with `await_decision` gets: podctl's decision (None: none yet),
    the message its model reads, who answered, or that it was settled without podctl."""

    decision: Decision | None
    message: str
    by: str
    settled: str


class Answered(TypedDict):
    """`approve` / `deny`: the request answered, and by whom."""

    name: str
    request: int
    decision: Decision
    tool: str
    detail: str
    by: str


class Subscribed(TypedDict):
    subscribed: bool


class UsageReported(TypedDict):
    added: int
    refused: int


class UsageCursors(TypedDict):
    files: list[dict[str, Any]]


class UsageRows(TypedDict):
    rows: list[dict[str, Any]]
    pricing: dict[str, dict[str, float]]
    limits: dict[str, Any]
    now: float


class OpenAsks(TypedDict):
    asks: list[dict[str, Any]]
    now: float


class Synced(TypedDict):
    added: list[str]
    removed: list[str]
    changed: list[str]


class Pruned(TypedDict):
    deleted: int


class Logged(TypedDict):
    message_id: int | None


HandedOff = TypedDict("HandedOff", {"from": str, "to": str, "message_id": int})


class RuleRow(TypedDict):
    name: str
    on: str
    agent: str | None
    rounds: int
    max_rounds: int
    open_ask: int | None
    last_fired: float | None
    cooldown_s: float
    ask: str | list[str] | None
    handoff: str | None


class Rules(TypedDict):
    rules: list[RuleRow]


class RuleReset(TypedDict):
    name: str
    rounds: int


class BridgeDue(TypedDict):
    """What is due for the other sites (`bridge_pull`)."""

    messages: list[dict[str, Any]]
    receipts: list[dict[str, Any]]
    state: dict[str, Any] | None


class BridgeMarked(TypedDict):
    marked: int


class BridgeReceived(TypedDict):
    results: list[dict[str, Any]]


class BridgeLink(TypedDict):
    link: dict[str, Any]
    site: str
    pod: str


class Event(TypedDict):
    """A frame on a subscribed connection: `data` is the event's record (wire.py)."""

    v: int
    event: EventName
    data: dict[str, Any]


def plain(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a plain dict, for a caller that adds its own fields to it (`podctl status` adds
    each agent's window)."""
    return dict(record)
