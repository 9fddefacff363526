"""The op table: every wire operation, who may call it, and the method that runs it.

An operation is a method of one of the broker's parts marked with `@op(access)`: the mark checks
its arguments strictly (broker/args.py) and registers it under its name (the method's name
without `op_`). `OpTable` collects the marked methods of the parts once, so the broker dispatches
by lookup and refuses, in one place, what an identity may not call. The contract of each
operation is in wire.py's docstring (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import wire
from .args import checked
from .paths import BRIDGE, USER

if TYPE_CHECKING:
    from .commits import NewMessage

Access = Literal["member", "user", "bridge", "anyone"]
"""Who may call an operation: `member` every agent and the user (not the bridge); `user` the pod's
owner only; `bridge` the pod's bridge only (it carries messages between sites and speaks for
nobody); `anyone` every identity (`hello`)."""

OpResult = Mapping[str, Any]
"""An operation's answer: its record (broker/records.py), JSON on the wire."""
Run = Callable[..., Awaitable[OpResult]]
F = TypeVar("F", bound=Callable[..., Awaitable[OpResult]])


@dataclass(frozen=True)
class Commit:
    """What a committing operation stores (one message), and how its answer is made once the message
    is committed (`answer` takes the committed message: its id, or the stored one of a retry)."""

    message: NewMessage
    answer: Callable[[NewMessage], OpResult]


Front = Callable[..., Commit]
C = TypeVar("C", bound=Callable[..., Commit])
Committer = Callable[["NewMessage"], Awaitable["NewMessage"]]

_MARK = "__podctl_op__"


class OpError(wire.BrokerError):
    """An operation refused: `code` is one of wire.py's error codes, `message` says what to do. In the
    broker's process it is what a client would get as a `BrokerError` (the MCP tools catch that)."""


@dataclass(frozen=True)
class Op:
    name: str
    access: Access
    run: Run
    front: Front | None = None
    """A committing operation's checks and message, run without awaiting anything: the server runs
    it on the spot and answers from the group commit's callback (no task per request)."""


def op(access: Access = "member") -> Callable[[F], F]:
    """Mark a part's `op_<name>` method as the wire operation `<name>`, callable by `access`."""

    def mark(method: F) -> F:
        wrapped = checked(method)
        setattr(wrapped, _MARK, (method.__name__.removeprefix("op_"), access))
        return wrapped

    return mark


def declared(*classes: type) -> dict[str, Access]:
    """The operations the given part classes declare, with who may call each."""
    out: dict[str, Access] = {}
    for cls in classes:
        for attr in dir(cls):
            marked = getattr(getattr(cls, attr), _MARK, None)
            if marked is not None:
                out[marked[0]] = marked[1]
    return out


def committing(access: Access = "member") -> Callable[[C], C]:
    """Mark a part's `op_<name>` method as the wire operation `<name>` that stores one message: it
    checks and returns a `Commit` without awaiting anything; the op table commits it."""

    def mark(method: C) -> C:
        wrapped = checked(method)
        setattr(wrapped, _MARK, (method.__name__.removeprefix("op_"), access))
        setattr(wrapped, _COMMITS, True)
        return wrapped

    return mark


_COMMITS = "__podctl_commits__"


class OpTable:
    """The operations of the given parts, by name (a name registered twice is a bug: it raises).
    `commit` stores a committing operation's message (the broker's one way to store a message)."""

    def __init__(self, *parts: object, commit: Committer) -> None:
        self.ops: dict[str, Op] = {}
        for part in parts:
            for attr in dir(type(part)):
                marked = getattr(getattr(type(part), attr), _MARK, None)
                if marked is None:
                    continue
                name, access = marked
                if name in self.ops:
                    raise ValueError(f"operation {name!r} is registered twice")
                method = getattr(part, attr)
                if getattr(method, _COMMITS, False):
                    self.ops[name] = Op(name, access, _committed(method, commit), front=method)
                else:
                    self.ops[name] = Op(name, access, method)
        self._bridge_ops = ", ".join(sorted(n for n, o in self.ops.items() if o.access == "bridge"))

    def admit(self, name: str, agent: str) -> Op:
        """The operation `name`, if `agent` may call it; else the error that says why not."""
        found = self.ops.get(name)
        if found is None:
            raise OpError(wire.BAD_REQUEST, f"unknown operation {name!r}")
        access = found.access
        if access == "user" and agent != USER:
            raise OpError(wire.FORBIDDEN, f"{name} is for the pod's owner (user) only")
        if access == "bridge" and agent != BRIDGE:
            raise OpError(wire.FORBIDDEN, f"{name} is for the pod's bridge only")
        if agent == BRIDGE and access not in ("bridge", "anyone"):
            raise OpError(wire.FORBIDDEN, f"the pod's bridge may use only {self._bridge_ops}")
        return found


def _committed(front: Front, commit: Committer) -> Run:
    """A committing operation run as any other: check, commit (awaited), answer."""

    async def run(agent: str, **args: Any) -> OpResult:
        work = front(agent, **args)
        return work.answer(await commit(work.message))

    return run
