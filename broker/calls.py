"""The clients' `call`, typed per operation on the protocol's records (records.py): wire.py `Client`
and client.py `AsyncClient` declare their `call` as these, so a renamed field fails the type check,
not a user. Standard library only; imported under `TYPE_CHECKING` alone."""

from __future__ import annotations

from typing import Any, Literal, Protocol, overload

from .records import (
    Agents,
    AgentState,
    Answered,
    Asked,
    AskStatus,
    BridgeDue,
    BridgeLink,
    BridgeMarked,
    BridgeReceived,
    DecisionAnswer,
    HandedOff,
    Hello,
    HookAnswer,
    Injected,
    Logged,
    McpOpened,
    MessagePage,
    OpenAsks,
    Pruned,
    Replied,
    RuleReset,
    Rules,
    StateSet,
    Status,
    Subscribed,
    Synced,
    Told,
    UsageCursors,
    UsageReported,
    UsageRows,
)

Recipients = str | list[str]
Args = Any
"""The arguments of an operation not spelled out here (wire.py says them)."""


class Calls(Protocol):
    """A blocking client's `call`, typed per operation (wire.py `Client.call`); `timeout` in seconds.
    Each operation runs as the `op_<name>` method of one of the broker's parts (broker/service.py
    `PARTS`: `tell` is `Messaging.op_tell`)."""

    @overload
    def __call__(self, op: Literal["hello"], timeout: float | None = None, *, shim: bool = ...) -> Hello: ...
    @overload
    def __call__(
        self, op: Literal["tell"], timeout: float | None = None, *, to: Recipients, text: str, urgent: bool = ...,
        client_msg_id: str = ...,
    ) -> Told: ...
    @overload
    def __call__(
        self, op: Literal["ask"], timeout: float | None = None, *, to: Recipients, text: str, client_msg_id: str = ...,
    ) -> Asked: ...
    @overload
    def __call__(
        self, op: Literal["read_messages", "history"], timeout: float | None = None, *, since: int | None = ...,
        limit: int = ...,
    ) -> MessagePage: ...
    @overload
    def __call__(
        self, op: Literal["post_reply"], timeout: float | None = None, *, ask_id: int, text: str, client_msg_id: str = ...,
    ) -> Replied: ...
    @overload
    def __call__(
        self, op: Literal["wait_for_reply", "check_replies"], timeout: float | None = None, *, ask_id: int,
        timeout_ms: float = ...,
    ) -> AskStatus: ...
    @overload
    def __call__(self, op: Literal["list_agents"], timeout: float | None = None) -> Agents: ...
    @overload
    def __call__(self, op: Literal["status"], timeout: float | None = None) -> Status: ...
    @overload
    def __call__(self, op: Literal["set_state"], timeout: float | None = None, *, name: str, state: AgentState) -> StateSet: ...
    @overload
    def __call__(self, op: Literal["hook"], timeout: float | None = None, **args: Args) -> HookAnswer: ...
    @overload
    def __call__(self, op: Literal["mcp"], timeout: float | None = None, **args: Args) -> McpOpened: ...
    @overload
    def __call__(self, op: Literal["ack_injected"], timeout: float | None = None, **args: Args) -> Injected: ...
    @overload
    def __call__(self, op: Literal["await_decision"], timeout: float | None = None, **args: Args) -> DecisionAnswer: ...
    @overload
    def __call__(self, op: Literal["subscribe"], timeout: float | None = None, **args: Args) -> Subscribed: ...
    @overload
    def __call__(self, op: Literal["usage_report"], timeout: float | None = None, **args: Args) -> UsageReported: ...
    @overload
    def __call__(self, op: Literal["usage_cursors"], timeout: float | None = None, **args: Args) -> UsageCursors: ...
    @overload
    def __call__(self, op: Literal["usage"], timeout: float | None = None, **args: Args) -> UsageRows: ...
    @overload
    def __call__(self, op: Literal["asks"], timeout: float | None = None, **args: Args) -> OpenAsks: ...
    @overload
    def __call__(self, op: Literal["sync"], timeout: float | None = None, **args: Args) -> Synced: ...
    @overload
    def __call__(self, op: Literal["prune"], timeout: float | None = None, **args: Args) -> Pruned: ...
    @overload
    def __call__(self, op: Literal["log"], timeout: float | None = None, **args: Args) -> Logged: ...
    @overload
    def __call__(self, op: Literal["handoff"], timeout: float | None = None, **args: Args) -> HandedOff: ...
    @overload
    def __call__(self, op: Literal["rules"], timeout: float | None = None, **args: Args) -> Rules: ...
    @overload
    def __call__(self, op: Literal["reset_rule"], timeout: float | None = None, **args: Args) -> RuleReset: ...
    @overload
    def __call__(self, op: Literal["approve", "deny"], timeout: float | None = None, **args: Args) -> Answered: ...
    @overload
    def __call__(self, op: Literal["bridge_pull"], timeout: float | None = None, **args: Args) -> BridgeDue: ...
    @overload
    def __call__(self, op: Literal["bridge_sent"], timeout: float | None = None, **args: Args) -> BridgeMarked: ...
    @overload
    def __call__(self, op: Literal["bridge_receive"], timeout: float | None = None, **args: Args) -> BridgeReceived: ...
    @overload
    def __call__(self, op: Literal["bridge_link"], timeout: float | None = None, **args: Args) -> BridgeLink: ...


class AsyncCalls(Protocol):
    """An asyncio client's `call`, typed per operation (client.py `AsyncClient.call`): as `Calls`."""

    @overload
    async def __call__(self, op: Literal["hello"], timeout: float = ..., *, shim: bool = ...) -> Hello: ...
    @overload
    async def __call__(
        self, op: Literal["tell"], timeout: float = ..., *, to: Recipients, text: str, urgent: bool = ...,
        client_msg_id: str = ...,
    ) -> Told: ...
    @overload
    async def __call__(
        self, op: Literal["ask"], timeout: float = ..., *, to: Recipients, text: str, client_msg_id: str = ...,
    ) -> Asked: ...
    @overload
    async def __call__(
        self, op: Literal["read_messages", "history"], timeout: float = ..., *, since: int | None = ..., limit: int = ...,
    ) -> MessagePage: ...
    @overload
    async def __call__(
        self, op: Literal["post_reply"], timeout: float = ..., *, ask_id: int, text: str, client_msg_id: str = ...,
    ) -> Replied: ...
    @overload
    async def __call__(
        self, op: Literal["wait_for_reply", "check_replies"], timeout: float = ..., *, ask_id: int,
        timeout_ms: float = ...,
    ) -> AskStatus: ...
    @overload
    async def __call__(self, op: Literal["list_agents"], timeout: float = ...) -> Agents: ...
    @overload
    async def __call__(self, op: Literal["status"], timeout: float = ...) -> Status: ...
    @overload
    async def __call__(self, op: Literal["set_state"], timeout: float = ..., *, name: str, state: AgentState) -> StateSet: ...
    @overload
    async def __call__(self, op: Literal["hook"], timeout: float = ..., **args: Args) -> HookAnswer: ...
    @overload
    async def __call__(self, op: Literal["mcp"], timeout: float = ..., **args: Args) -> McpOpened: ...
    @overload
    async def __call__(self, op: Literal["ack_injected"], timeout: float = ..., **args: Args) -> Injected: ...
    @overload
    async def __call__(self, op: Literal["await_decision"], timeout: float = ..., **args: Args) -> DecisionAnswer: ...
    @overload
    async def __call__(self, op: Literal["subscribe"], timeout: float = ..., **args: Args) -> Subscribed: ...
    @overload
    async def __call__(self, op: Literal["usage_report"], timeout: float = ..., **args: Args) -> UsageReported: ...
    @overload
    async def __call__(self, op: Literal["usage_cursors"], timeout: float = ..., **args: Args) -> UsageCursors: ...
    @overload
    async def __call__(self, op: Literal["usage"], timeout: float = ..., **args: Args) -> UsageRows: ...
    @overload
    async def __call__(self, op: Literal["asks"], timeout: float = ..., **args: Args) -> OpenAsks: ...
    @overload
    async def __call__(self, op: Literal["sync"], timeout: float = ..., **args: Args) -> Synced: ...
    @overload
    async def __call__(self, op: Literal["prune"], timeout: float = ..., **args: Args) -> Pruned: ...
    @overload
    async def __call__(self, op: Literal["log"], timeout: float = ..., **args: Args) -> Logged: ...
    @overload
    async def __call__(self, op: Literal["handoff"], timeout: float = ..., **args: Args) -> HandedOff: ...
    @overload
    async def __call__(self, op: Literal["rules"], timeout: float = ..., **args: Args) -> Rules: ...
    @overload
    async def __call__(self, op: Literal["reset_rule"], timeout: float = ..., **args: Args) -> RuleReset: ...
    @overload
    async def __call__(self, op: Literal["approve", "deny"], timeout: float = ..., **args: Args) -> Answered: ...
    @overload
    async def __call__(self, op: Literal["bridge_pull"], timeout: float = ..., **args: Args) -> BridgeDue: ...
    @overload
    async def __call__(self, op: Literal["bridge_sent"], timeout: float = ..., **args: Args) -> BridgeMarked: ...
    @overload
    async def __call__(self, op: Literal["bridge_receive"], timeout: float = ..., **args: Args) -> BridgeReceived: ...
    @overload
    async def __call__(self, op: Literal["bridge_link"], timeout: float = ..., **args: Args) -> BridgeLink: ...

