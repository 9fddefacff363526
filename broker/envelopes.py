"""What crosses sites: the envelopes a site's bridge carries (messages, receipts, state reports), checked
strictly when they arrive (a site is trusted only for itself: broker/sites.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from .args import MAX_NAME, MAX_RECIPIENTS

ENVELOPE_VERSION = 1
PULL_LIMIT = 500
PULL_BYTES = 4 * 1024 * 1024
"""What one `bridge_pull` hands over at most (it always hands at least one item)."""
RANKS = {"queued": 1, "injected": 2, "read": 3}
STATE_KINDS = ("tell", "ask", "reply", "notice")
MAX_TEXT = 1024 * 1024
"""The largest message text taken from another site (a pod's own limit is at most this)."""

SiteToken = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=MAX_NAME)]
MemberName = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


def _ref(value: Any) -> Any:
    """JSON has no tuples: a reference comes as a list of two."""
    return tuple(value) if isinstance(value, list) else value


Ref = Annotated[tuple[SiteToken, Annotated[int, Field(ge=1, le=2**63 - 1)]], BeforeValidator(_ref)]
"""A message as another site knows it: [its site, its id there]."""
Time = Annotated[float, Field(ge=0, le=10**11, allow_inf_nan=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class MessageIn(_In):
    id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    ts: Time
    sender: MemberName = Field(alias="from")
    kind: Literal["tell", "ask", "reply", "notice"]
    to: Annotated[list[MemberName], Field(max_length=MAX_RECIPIENTS)]
    text: Annotated[str, Field(max_length=MAX_TEXT)]
    target: Annotated[str, Field(max_length=4096)] | None = None
    urgent: bool = False
    followup: bool = False
    origin: Annotated[str, Field(max_length=128)] | None = None


class AskIn(_In):
    mode: Literal["all", "first"] = "all"
    route: MemberName | None = None
    deadline: Time | None = None
    behalf: MemberName | None = None


class MessageEnvelope(_In):
    v: Literal[1]
    kind: Literal["msg"]
    site: SiteToken
    message: MessageIn
    ask: AskIn | None = None
    ask_ref: Ref | None = None


class ReceiptEnvelope(_In):
    v: Literal[1]
    kind: Literal["rcpt"]
    site: SiteToken
    ref: Ref
    to: MemberName
    queued_at: Time | None = None
    injected_at: Time | None = None
    read_at: Time | None = None


class MemberIn(_In):
    name: MemberName
    state: Literal["busy", "idle", "stopped"]
    state_ts: Time | None = None
    tools_ready: bool = False
    unread: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    last_activity: Time | None = None


class StateEnvelope(_In):
    v: Literal[1]
    kind: Literal["state"]
    site: SiteToken
    ts: Time
    members: Annotated[list[MemberIn], Field(max_length=4096)]
    usage: Annotated[list[list[Any]], Field(max_length=100_000)] = Field(default_factory=list)


ENVELOPE: TypeAdapter[MessageEnvelope | ReceiptEnvelope | StateEnvelope] = TypeAdapter(
    Annotated[MessageEnvelope | ReceiptEnvelope | StateEnvelope, Field(discriminator="kind")]
)


class Refused(Exception):
    """An envelope this site does not take (it is acknowledged and dropped, with the reason logged)."""


class Later(Exception):
    """An envelope that cannot be taken yet (a reply whose ask has not arrived): delivered again later."""


LATER_ATTEMPTS = 20
"""A reply whose ask never arrives is taken without it after this many deliveries (its text is not lost)."""
