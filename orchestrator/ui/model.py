"""What the live view knows of a pod: agents, the recent conversation with delivery marks, open
asks and rules. Plain data, changed only by snapshots and events from the broker (feed.py) and
read by the widgets (app.py); no Textual, no I/O, so it is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_MESSAGES = 2000
"""The conversation keeps this many recent messages (older ones are in `podctl tail`)."""

Connection = Literal["connecting", "live", "down", "reconnecting"]


@dataclass
class AgentRow:
    name: str
    cli: str
    role: str = ""
    state: str = "stopped"
    state_ts: float | None = None
    tools_ready: bool = False
    unread: int = 0
    last_wake: str | None = None
    last_wake_ts: float | None = None
    last_activity: float | None = None
    handed_off_to: str | None = None
    usage: dict[str, Any] | None = None
    """Its tokens and cost so far (`podctl usage`'s per-agent entry), None before any."""
    over_budget: str | None = None
    starting: bool = False
    """Its CLI was just started and is not up yet (no tools, no hook): shown as `starting`."""
    site: str | None = None
    """Where it runs, in a pod across machines (docs/sites.md)."""
    reported_at: float | None = None
    """For an agent of another site: when its site last reported it (None: never; not one of this site's)."""
    remote: bool = False
    blocked: dict[str, Any] | None = None
    """What it waits for a person for (status's `blocked`), while it is blocked."""
    failed: dict[str, Any] | None = None
    """Why it cannot work (status's `failed`), while it is failed."""

    @classmethod
    def from_status(cls, row: dict[str, Any]) -> AgentRow:
        return cls(
            name=row["name"], cli=row.get("cli", "?"), role=row.get("role", ""), state=row.get("state", "stopped"),
            state_ts=row.get("state_ts"), tools_ready=bool(row.get("tools_ready")), unread=int(row.get("unread") or 0),
            last_wake=row.get("last_wake"), last_wake_ts=row.get("last_wake_ts"),
            last_activity=row.get("last_activity"), handed_off_to=row.get("handed_off_to"),
            usage=row.get("usage"), over_budget=row.get("over_budget"), starting=bool(row.get("starting")),
            site=row.get("site"), reported_at=row.get("reported_at"), remote=bool(row.get("remote")),
            blocked=row.get("blocked"), failed=row.get("failed"),
        )

    @property
    def needs_you(self) -> bool:
        return self.state in ("blocked", "failed")

    @property
    def shown_state(self) -> str:
        return "starting" if self.state == "idle" and self.starting else self.state


@dataclass
class Changes:
    """What an update touched, so the view redraws only that."""

    agents: bool = False
    messages: list[int] = field(default_factory=list)
    """Ids of messages added."""
    marks: set[int] = field(default_factory=set)
    """Ids of messages whose delivery marks changed."""
    rebuild: bool = False
    """The conversation must be drawn again from scratch (a snapshot, messages dropped)."""
    asks: bool = False
    connection: bool = False
    """The connection line changed (live, down, reconnecting)."""
    refetch: set[str] = field(default_factory=set)
    """What the feed should ask the broker for again: `status`, `asks`, `rules`."""

    def merge(self, other: Changes) -> None:
        self.agents |= other.agents
        self.messages += other.messages
        self.marks |= other.marks
        self.rebuild |= other.rebuild
        self.asks |= other.asks
        self.connection |= other.connection
        self.refetch |= other.refetch

    def __bool__(self) -> bool:
        return bool(self.agents or self.messages or self.marks or self.rebuild or self.asks or self.connection)


@dataclass
class PodView:
    pod: str
    agents: dict[str, AgentRow] = field(default_factory=dict)
    routes: list[str] = field(default_factory=list)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Recent messages by id, in id order; each has `delivery`: {recipient: state}."""
    asks: list[dict[str, Any]] = field(default_factory=list)
    """Open asks (the broker's `asks` operation)."""
    rules: list[dict[str, Any]] = field(default_factory=list)
    connection: Connection = "connecting"
    note: str = ""
    """One line on the connection: down since, reconnected, the store it reads."""

    # -- snapshots ---------------------------------------------------------------------------

    def set_status(self, status: dict[str, Any]) -> Changes:
        self.agents = {row["name"]: AgentRow.from_status(row) for row in status.get("agents", [])}
        if "routes" in status:
            self.routes = [r["name"] for r in status["routes"]]
        return Changes(agents=True)

    def set_history(self, messages: Sequence[Mapping[str, Any]]) -> Changes:
        """Messages with their `delivery` lists (the broker's `history`): added, or marks refreshed."""
        changes = Changes()
        for message in messages:
            marks = {d["to"]: d["state"] for d in message.get("delivery") or []}
            known = self.messages.get(message["id"])
            if known is None:
                changes.merge(self._add(message, marks))
            elif known["delivery"] != marks:
                known["delivery"] = marks
                changes.marks.add(message["id"])
        return changes

    def set_asks(self, asks: list[dict[str, Any]]) -> Changes:
        self.asks = asks
        return Changes(asks=True)

    def set_rules(self, rules: list[dict[str, Any]]) -> Changes:
        self.rules = rules
        return Changes(asks=True)

    # -- events --------------------------------------------------------------------------------

    def apply(self, frame: dict[str, Any]) -> Changes:
        """One event from the broker's stream (wire.py documents them)."""
        name, data = frame.get("event"), frame.get("data") or {}
        if name == "message":
            if data["id"] in self.messages:
                return Changes()
            changes = self._add(data, {r: "queued" for r in data.get("to") or []})
            changes.refetch.add("status")
            if data.get("kind") in ("ask", "reply"):
                changes.refetch.add("asks")
            if str(data.get("origin") or "").startswith("rule:") or data.get("kind") == "ask":
                changes.refetch.add("rules")
            return changes
        if name == "delivery":
            return self._delivered(data)
        if name == "gap":
            return Changes(refetch={"status", "asks", "rules"})
        if name == "site" and data.get("reported_at"):
            heard = [a for a in self.agents.values() if a.remote and a.site == data.get("site")]
            for row in heard:
                row.reported_at = data["reported_at"]
            return Changes(agents=bool(heard))
        agent = self.agents.get(str(data.get("name")))
        return self._agent_event(str(name), agent, data) if agent is not None else Changes()

    @staticmethod
    def _agent_event(name: str, agent: AgentRow, data: dict[str, Any]) -> Changes:
        if data.get("reported_at"):
            agent.reported_at = data["reported_at"]
        if name == "state":
            agent.state, agent.state_ts, agent.last_activity = data["state"], data["ts"], data["ts"]
            agent.starting = bool(data.get("starting"))
            return Changes(agents=True, refetch={"rules"} if data["state"] == "idle" else set())
        if name == "attention":
            agent.state = str(data.get("state") or agent.state)
            agent.blocked, agent.failed = data.get("blocked"), data.get("failed")
        elif name == "tools":
            agent.tools_ready = bool(data.get("ready"))
            agent.starting = agent.starting and not agent.tools_ready
        elif name == "usage":
            agent.usage, agent.over_budget = data.get("usage"), data.get("over_budget")
        elif name == "wake":
            agent.last_wake, agent.last_wake_ts = data.get("result"), data.get("ts")
        else:
            return Changes()
        return Changes(agents=True)

    def _add(self, message: Mapping[str, Any], marks: dict[str, str]) -> Changes:
        changes = Changes(messages=[message["id"]])
        self.messages[message["id"]] = {**message, "delivery": marks}
        if len(self.messages) > MAX_MESSAGES:
            for old in list(self.messages)[: len(self.messages) - MAX_MESSAGES]:
                del self.messages[old]
            changes.rebuild = True
        sender = self.agents.get(message.get("from", ""))
        if sender is not None:
            sender.last_activity = message.get("ts")
            changes.agents = True
        return changes

    def _delivered(self, data: dict[str, Any]) -> Changes:
        changes = Changes(refetch={"status"})
        for mid in data.get("ids") or []:
            message = self.messages.get(mid)
            if message is None:
                continue
            marks = message["delivery"]
            if marks.get(data["to"]) != "read":
                marks[data["to"]] = data["state"]
                changes.marks.add(mid)
        return changes

    # -- what the widgets read -------------------------------------------------------------------

    def ordered(self) -> list[str]:
        """The agents as the table lists them: those that need a person first (blocked, then failed),
        the others in the pod file's order."""
        rank = {"blocked": 0, "failed": 1}
        return sorted(self.agents, key=lambda n: rank.get(self.agents[n].state, 2))

    def needing(self) -> list[AgentRow]:
        return [self.agents[n] for n in self.ordered() if self.agents[n].needs_you]

    def thread_parent(self, message: dict[str, Any]) -> int | None:
        """The ask a reply answers, when that ask is in view (then the reply is drawn under it)."""
        ask_id = message.get("ask_id")
        if message.get("kind") == "reply" and isinstance(ask_id, int) and ask_id in self.messages:
            return ask_id
        return None

    def visible(self, agent: str | None = None, search: str = "") -> Iterator[dict[str, Any]]:
        """Messages in id order, those involving `agent` (as sender or recipient) and containing
        `search` (case-insensitive) when given."""
        needle = search.casefold()
        for message in self.messages.values():
            if agent is not None and message.get("from") != agent and agent not in (message.get("to") or []):
                continue
            if needle and needle not in str(message.get("text", "")).casefold():
                continue
            yield message

    def set_connection(self, connection: Connection, note: str) -> Changes:
        self.connection, self.note = connection, note
        return Changes(connection=True)
