"""The argument types of the wire operations, checked before a request does anything.

Every `op_*` method of the broker is wrapped with pydantic's `validate_call` in strict mode over
these types, so a request with a wrong type, an unknown argument, a number that is not finite or
an integer SQLite cannot hold is a `bad_request` of its own, before it can join a group commit
(where it could fail the messages of others) or reach a timer.
"""

from __future__ import annotations

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


def checked(method: F) -> F:
    """Validate an operation's arguments strictly against its annotations."""
    return validate_call(config=ConfigDict(strict=True, arbitrary_types_allowed=True))(method)


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
