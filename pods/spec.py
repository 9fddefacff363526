"""The pod file schema (pydantic v2). A validated PodSpec is the resolved desired state of a pod."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from . import layout, worktree
from .errors import PodctlError
from .globs import GlobError, compile_glob
from .state import state_root

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
"""Pod, agent, route and rule names. Check with `fullmatch`; the `\\Z` also keeps `.match` users
exact (`$` would accept a trailing newline)."""
RESERVED_NAMES = frozenset({"user", "all", "podctl"})

RULE_TEXT_FIELDS = ("agent", "pod", "diff", "changed_files", "last_message", "reason", "workdir")
"""The `{placeholders}` a rule's `text` may use (the broker fills them)."""

SOCKET_PATH_MAX = 107
"""Longest Unix socket path in bytes on Linux (sun_path is 108 bytes with the closing NUL)."""

RestartPolicy = Literal["never", "on-failure", "always"]
PermissionMode = Literal["ask", "edits", "full"]
"""What an agent may do without asking (docs/attention.md maps it to each CLI's own modes):
`ask` edits and commands ask; `edits` edits inside its folder are allowed, commands ask; `full` nothing asks."""
NoticeOn = Literal["blocked", "failed", "over_budget"]
NOTIFY_FIELDS = ("pod", "agent", "detail", "on")
"""The `{placeholders}` a notify command may use."""


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and '-', starting with a letter or digit"
        )
    return value


def _check_agent_name(value: str) -> str:
    _check_name(value)
    if value in RESERVED_NAMES:
        raise ValueError(f"{value!r} is reserved; choose another agent name")
    return value


AgentName = Annotated[str, AfterValidator(_check_agent_name)]
"""Checked per key, so every bad agent name is reported, not only the first."""


def socket_path_problem(pod_name: str, state_root: Path) -> str | None:
    """Why the pod's broker socket `<state root>/<pod>/broker.sock` cannot be bound, or None.

    Binding a longer path fails only at `podctl up`; saying it at validation names the fix.
    """
    path = state_root / pod_name / layout.SOCKET
    size = len(os.fsencode(path))
    if size <= SOCKET_PATH_MAX:
        return None
    room = SOCKET_PATH_MAX - (size - len(os.fsencode(pod_name)))
    fix = (
        f"use a pod name of at most {room} characters, or a shorter PODCTL_HOME"
        if room >= 1 else "set a shorter PODCTL_HOME"
    )
    return (
        f"pod name {pod_name!r} ({len(pod_name)} characters) makes the broker socket path {path} {size} bytes long,"
        f" over the {SOCKET_PATH_MAX}-byte limit of Unix sockets: {fix}"
    )


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cli(value: str) -> str:
    """`cli` names a registered adapter (pods/clis.py), so plug-ins are accepted like built-ins."""
    from . import clis
    from .problems import suggest

    known = clis.names()
    if value not in known:
        raise ValueError(f"{value!r} is not one of {', '.join(known)}{suggest(value, known)}")
    return value


def _check_branch(value: str) -> str:
    """The shape of a branch name; git itself checks the rest (`git check-ref-format`) at validation."""
    if not value or value != value.strip() or any(c in value for c in " ~^:?*[\\\0") or value.startswith("-"):
        raise ValueError(f"{value!r} is not a usable branch name: no spaces, ~ ^ : ? * [ \\, and not starting with '-'")
    return value


SiteName = Annotated[str, AfterValidator(_check_name)]
"""Where an agent runs, when the pod spans machines (docs/sites.md): a NATS subject token of its own."""

BRIDGE_SCHEMES = ("nats", "tls", "ws", "wss")


def _check_bridge_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in BRIDGE_SCHEMES or not rest or any(c.isspace() for c in value):
        raise ValueError(
            f"{value!r} is not a NATS server URL: write nats://HOST:4222 (or tls://HOST:4222 for TLS; ws:// and wss://"
            " for websockets)"
        )
    return value


class BridgeSpec(Strict):
    """The NATS server (JetStream) that carries the pod's messages between its sites (docs/sites.md)."""

    url: Annotated[str, AfterValidator(_check_bridge_url)] = Field(
        description="the NATS server: nats://HOST:PORT, or tls://HOST:PORT for TLS",
    )
    credentials: str | None = Field(
        default=None,
        description="this machine's NATS credentials file (~ expanded): a .creds file (JWT and nkey), an nkey seed,"
        " or one line USER:PASSWORD; each site has its own at this path",
    )
    ca: str | None = Field(default=None, description="a CA bundle to verify the server's TLS certificate (tls://)")


class AgentSpec(Strict):
    """One agent: a CLI in its own tmux window."""

    cli: Annotated[str, AfterValidator(_check_cli), Field(description="the agent's CLI (a registered adapter)")]
    role: str = ""
    model: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    restart: RestartPolicy = "never"
    script: dict[str, Any] | str | None = None
    worktree: bool | Annotated[str, AfterValidator(_check_branch)] | None = Field(
        default=None,
        description="run in a git worktree of its own: true (branch podctl/<pod>/<agent>), a branch name, or false;"
        " default: the pod's `worktrees`",
    )
    permissions: PermissionMode | None = Field(
        default=None,
        description="what it may do without asking: ask (edits and commands ask), edits (edits in its folder allowed,"
        " commands ask), full (nothing asks); default: the pod's `permissions`, else its CLI's own default",
    )
    site: SiteName | None = Field(
        default=None, description="the machine (site) the agent runs at, when the pod has a `bridge` (docs/sites.md)",
    )


class RouteSpec(Strict):
    """A named address with a policy; agents `ask(to=<route name>)`."""

    name: str
    from_: list[str] | None = Field(default=None, alias="from")
    to: list[str]
    mode: Literal["all", "first"] = "all"
    timeout: str = "10m"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _name = field_validator("name")(_check_name)


def _check_glob(value: str) -> str:
    try:
        compile_glob(value)
    except GlobError as exc:
        raise ValueError(str(exc)) from None
    return value


def _no_lone_glob(value: Any) -> Any:
    """`changed: "src/**"` would be taken as a list of characters by some readers: say how to write it."""
    if isinstance(value, str):
        raise ValueError(f"`changed` is a list of globs: write changed: [{value!r}]")
    return value


def _check_regex(value: str) -> str:
    if not value:
        raise ValueError("an empty regex matches every screen: write what to look for")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regex: {exc}") from None
    return value


Glob = Annotated[str, AfterValidator(_check_glob)]


class RuleWhen(Strict):
    """A rule's filter: which changes (turn_end, file_change) or which screen text (pattern) fire it."""

    changed: Annotated[list[Glob], BeforeValidator(_no_lone_glob)] | None = Field(
        default=None,
        description="turn_end and file_change rules: fire only when a changed file matches one of these globs"
        " (relative to the agent's workdir; `*` within a folder, `**` across folders; docs/pod-file.md)",
    )
    regex: Annotated[str, AfterValidator(_check_regex)] | None = Field(
        default=None, description="pattern rules: fire when this regex matches a line of the agent's pane",
    )


class RuleSpec(Strict):
    """An auto-ask rule: an event that sends an ask (or a hand-off) by itself."""

    name: str
    on: Literal["turn_end", "file_change", "pattern"]
    agent: str | None = None
    when: RuleWhen = Field(default_factory=RuleWhen)
    ask: str | list[str] | None = None
    handoff: str | None = None
    text: str = ""
    max_rounds: int = 3
    cooldown: str = "0s"

    _name = field_validator("name")(_check_name)


class ApprovalSpec(Strict):
    """Who answers some agents' permission requests instead of the person: `user`, an agent or a route."""

    agents: list[str] | None = Field(default=None, description="whose requests (default: every agent's)")
    to: str = Field(description="user, an agent or a route: it gets an ask naming the agent, tool and detail")
    timeout: str = Field(default="5m", description="how long the approver has to answer")
    then: Literal["person", "deny"] = Field(
        default="person", description="with no answer in time: the person answers (person) or the request is denied",
    )


def _listed(value: Any) -> Any:
    """One word where a list of them is meant: `on: blocked` is `on: [blocked]`."""
    return [value] if isinstance(value, str) else value


class NotifySpec(Strict):
    """Tell a person when agents need them: run a command, or ring the terminal bell."""

    on: Annotated[list[NoticeOn], BeforeValidator(_listed, json_schema_input_type=NoticeOn | list[NoticeOn])] = Field(
        description="blocked, failed, over_budget, or a list of them",
    )
    run: list[str] | None = Field(
        default=None, min_length=1,
        description="a command (argv, no shell); {pod}, {agent}, {detail} and {on} are filled in",
    )
    bell: bool = Field(default=False, description="ring the terminal bell in the pod's tmux session")

    def events(self) -> list[NoticeOn]:
        return list(self.on)


class Limits(Strict):
    message_bytes: int = Field(default=65536, gt=0, le=1_048_576, description="largest message text, in bytes (at most 1 MiB)")
    wait_cap_ms: int = Field(default=50_000, gt=0, description="longest single wait_for_reply call")
    undelivered_notice_s: float = Field(default=600.0, gt=0, description="non-delivery notice after this")
    retention_days: float | None = Field(default=None, gt=0, description="history kept by `podctl prune`")
    budget_usd: float | None = Field(
        default=None, gt=0, description="what the whole pod may spend, in USD; then its agents are no longer woken",
    )
    budget_tokens_per_agent: int | None = Field(
        default=None, gt=0, description="tokens (input, cached input, output) each agent may use; then it is no longer woken",
    )
    permission_hold_s: float = Field(
        default=600.0, ge=5, le=3600,
        description="how long a CLI's permission request waits for podctl's answer before its own dialog takes it",
    )


class Price(Strict):
    """USD per million tokens of one model (overrides podctl's shipped table)."""

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)


class PodSpec(Strict):
    """A resolved pod file (after `extends`)."""

    name: str
    workdir: str = "."
    extends: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    agents: dict[AgentName, AgentSpec]
    routes: list[RouteSpec] = Field(default_factory=list)
    rules: list[RuleSpec] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    pricing: dict[str, Price] = Field(
        default_factory=dict, description="USD per million tokens by model name, over podctl's shipped prices",
    )
    worktrees: bool = Field(
        default=False, description="every agent runs in a git worktree of its own unless it says `worktree: false`",
    )
    transcript: Literal["ui", "tail"] = Field(
        default="ui", description="what the pod's `podctl` window runs: the live view (ui) or the plain message stream (tail)",
    )
    permissions: PermissionMode | None = Field(
        default=None, description="every agent's `permissions` unless it says otherwise (default: each CLI's own)",
    )
    approvals: list[ApprovalSpec] = Field(
        default_factory=list, description="route agents' permission requests to an approver (the first that matches)",
    )
    notify: list[NotifySpec] = Field(default_factory=list, description="tell a person when agents need them")
    bridge: BridgeSpec | None = Field(
        default=None, description="one pod across machines: the NATS server that bridges its sites (docs/sites.md)",
    )

    source: Path | None = Field(default=None, exclude=True, description="the pod file it was loaded from")

    _name = field_validator("name")(_check_name)

    @field_validator("agents")
    @classmethod
    def _some_agents(cls, agents: dict[str, AgentSpec]) -> dict[str, AgentSpec]:
        if not agents:
            raise ValueError("a pod needs at least one agent")
        return agents

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of pod files for editors, with the registered CLIs as `cli`'s choices."""
        from . import clis

        doc = cls.model_json_schema(by_alias=True)
        doc["properties"].pop("source", None)
        doc["required"] = [r for r in doc.get("required", []) if r != "name"]
        doc["$defs"]["AgentSpec"]["properties"]["cli"]["enum"] = clis.names()
        doc["properties"]["agents"]["additionalProperties"] = {
            "anyOf": [{"$ref": "#/$defs/AgentSpec"}, {"type": "null"}],
            "description": "an agent; null drops an agent the `extends` template gives",
        }
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["title"] = "podctl pod file"
        return doc

    def agent_permissions(self, name: str) -> PermissionMode | None:
        """The agent's `permissions`, else the pod's; None: its CLI's own default."""
        return self.agents[name].permissions or self.permissions

    def approval_for(self, name: str) -> ApprovalSpec | None:
        """The first `approvals` entry that routes this agent's requests."""
        return next((a for a in self.approvals if a.agents is None or name in a.agents), None)

    def sites(self) -> list[str]:
        """The sites the pod's agents run at, sorted (none without a bridge: the pod is one machine)."""
        if self.bridge is None:
            return []
        return sorted({a.site for a in self.agents.values() if a.site})

    def site_of(self, name: str) -> str | None:
        """Where an agent runs (None: on every machine's own pod, as without a bridge)."""
        agent = self.agents.get(name)
        return agent.site if agent is not None and self.bridge is not None else None

    def local_agents(self, site: str | None) -> dict[str, AgentSpec]:
        """The agents this machine runs: those of `site`, or all of them for a pod without a bridge."""
        if self.bridge is None or site is None:
            return dict(self.agents)
        return {name: agent for name, agent in self.agents.items() if agent.site == site}

    def base_dir(self) -> Path:
        """The folder the pod file's relative paths are resolved from."""
        return self.source.parent if self.source else Path.cwd()

    def declared_workdir(self, name: str) -> Path:
        """The agent's folder as the pod file says it: in the main checkout."""
        base = (self.base_dir() / self.workdir).resolve()
        agent = self.agents[name]
        return (base / agent.workdir).resolve() if agent.workdir else base

    def agent_branch(self, name: str) -> str | None:
        """The branch of the agent's own worktree, or None when it works in the main checkout."""
        value = self.agents[name].worktree
        if value is None:
            value = self.worktrees
        if value is False:
            return None
        return value if isinstance(value, str) else worktree.default_branch(self.name, name)

    def agent_worktree(self, name: str) -> worktree.Placement | None:
        """Where the agent's worktree is (None without one); raises PodctlError when no repository holds its workdir."""
        branch = self.agent_branch(name)
        if branch is None:
            return None
        declared = self.declared_workdir(name)
        placement = worktree.place(state_root() / self.name, name, branch, declared)
        if placement is None:
            raise PodctlError(f"agent {name}: worktree needs a git repository, and {declared} is in none;"
                              " run `git init` there and commit, or set `worktree: false`")
        return placement

    def agent_workdir(self, name: str) -> Path:
        """Where the agent's CLI runs: its worktree's copy of its folder, or the folder itself."""
        placement = self.agent_worktree(name)
        return placement.workdir if placement else self.declared_workdir(name)
