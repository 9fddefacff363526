"""The argument types of the wire operations, checked before a request does anything.

Every `op_*` method of the broker is wrapped with pydantic's `validate_call` in strict mode over
these types, so a request with a wrong type, an unknown argument, a number that is not finite or
an integer SQLite cannot hold is a `bad_request` of its own, before it can join a group commit
(where it could fail the messages of others) or reach a timer. Arguments of the plainest types
(`PLAIN`: a name, a text, a flag, an id) that are plainly right are let through by a check of their
Python types and bounds first, the way a tell's always are; anything else goes to pydantic, whose
verdict is the same (tests/broker/test_args.py compares the two) and whose words say what is wrong.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, ValidationError, validate_call

INT64_MAX = 2**63 - 1
MAX_NAME = 64
MAX_RECIPIENTS = 256
READ_LIMIT = 500
"""The most messages (or asks) one read returns."""

Int64 = Annotated[int, Field(ge=-INT64_MAX - 1, le=INT64_MAX)]
Cursor = Annotated[int, Field(ge=0, le=INT64_MAX)]
AskId = Annotated[int, Field(ge=1, le=INT64_MAX)] | Annotated[str, Field(pattern=r"^[0-9]{1,18}$")]
Millis = Annotated[float, Field(ge=0, le=INT64_MAX, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=100 * 365 * 86400, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Recipients = Name | Annotated[list[Name], Field(min_length=1, max_length=MAX_RECIPIENTS)]
ClientMsgId = Annotated[str, Field(min_length=1, max_length=128)]
Claim = Annotated[str, Field(min_length=1, max_length=64)]
SessionId = Annotated[str, Field(pattern=r"^[0-9a-f]{8,64}$")]
Level = Annotated[str, Field(max_length=16)]
Facts = Annotated[dict[str, Any], Field(max_length=32)]
"""A hook event's facts (hooks/path/run.py's FACT_KEYS), each bounded by the hook."""

F = TypeVar("F", bound=Callable[..., Any])


Accept = Callable[[Any], bool]


def _text(low: int, high: int) -> Accept:
    return lambda v: type(v) is str and low <= len(v) <= high


def _whole(low: int, high: int) -> Accept:
    return lambda v: type(v) is int and low <= v <= high


def _recipients(v: Any) -> bool:
    if type(v) is str:
        return 1 <= len(v) <= MAX_NAME
    return (type(v) is list and 1 <= len(v) <= MAX_RECIPIENTS
            and all(type(n) is str and 1 <= len(n) <= MAX_NAME for n in v))


def _ask_id(v: Any) -> bool:
    if type(v) is int:
        return 1 <= v <= INT64_MAX
    return type(v) is str and 1 <= len(v) <= 18 and v.isascii() and v.isdigit()


PLAIN: dict[object, Accept] = {
    str: lambda v: type(v) is str,
    bool: lambda v: type(v) is bool,
    Name: _text(1, MAX_NAME),
    ClientMsgId: _text(1, 128),
    Claim: _text(1, 64),
    Level: _text(0, 16),
    Int64: _whole(-INT64_MAX - 1, INT64_MAX),
    Cursor: _whole(0, INT64_MAX),
    Recipients: _recipients,
    AskId: _ask_id,
}
"""What a plainly right argument of each plain type is: exactly what strict pydantic accepts of it."""


def _or_none(accept: Accept) -> Accept:
    return lambda v: v is None or accept(v)


def plain_accepts(method: Callable[..., Any]) -> tuple[dict[str, Accept], frozenset[str]] | None:
    """Each argument's plain check and the required ones, if every argument of `method` (after `self`
    and `agent`) has a plain type (or one of them or None); else None."""
    try:
        hints = typing.get_type_hints(method, include_extras=True)
    except (NameError, TypeError):  # a name only a type checker sees: pydantic resolves what it needs
        return None
    accepts: dict[str, Accept] = {}
    required = set()
    for name, param in list(inspect.signature(method).parameters.items())[2:]:
        hint = hints[name]
        optional = False
        choices = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
        if len(choices) == 2 and type(None) in choices:
            hint = next(a for a in choices if a is not type(None))
            optional = True
        accept = next((a for t, a in PLAIN.items() if t is hint), None)
        if accept is None or param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            return None
        accepts[name] = _or_none(accept) if optional else accept
        if param.default is param.empty:
            required.add(name)
    return accepts, frozenset(required)


def checked(method: F) -> F:
    """Validate an operation's arguments strictly against its annotations (plainly right plain
    arguments by their types and bounds, everything else by pydantic)."""
    validated = validate_call(config=ConfigDict(strict=True, arbitrary_types_allowed=True))(method)
    plain = plain_accepts(method)
    if plain is None:
        return validated
    accepts, required = plain

    @functools.wraps(method)
    def call(part: Any, agent: str, **args: Any) -> Any:
        if required <= args.keys() and all(k in accepts and accepts[k](v) for k, v in args.items()):
            return method(part, agent, **args)
        return validated(part, agent, **args)

    return typing.cast(F, call)


def describe(exc: ValidationError) -> str:
    """One line per bad argument, first error of each, in words a client author can act on."""
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        name = str(loc[0]) if loc else "arguments"
        if name.isdigit():
            name = "arguments"
        if name in seen:
            continue
        if err["type"] == "unexpected_keyword_argument":
            seen[name] = f"unknown argument {name!r}"
        elif err["type"] == "missing_argument":
            seen[name] = f"missing argument {name!r}"
        else:
            seen[name] = f"{name}: {err['msg'].lower()}"
    return "; ".join(seen.values())
