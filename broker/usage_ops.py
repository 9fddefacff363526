"""The broker's usage and budget operations (a part of the broker, behind `UsageHost`).

The supervisor reports what it read from the agents' session files (`usage_report`, with the
file's new position) and asks where it left off (`usage_cursors`); `usage` answers `podctl usage`.
After each report and each applied spec the budgets are evaluated (broker/budget.py): agents over
budget are not woken, notices are given once, and agents a raised limit frees are woken if
messages wait for them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from podctl.pods.usage import MAX_COUNT, MAX_KEY, MAX_MODEL, MAX_TS, Tokens, UsageTotals
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import wire
from .args import Int64, Name, Seconds
from .budget import Verdict, evaluate
from .optable import op
from .records import UsageCursors, UsageReported, UsageRows
from .usage_store import UsageStore

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .attention import AttentionDesk

log = logging.getLogger("podctl.broker.usage")

MAX_RECORDS = 2000
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class RecordIn(BaseModel):
    """One model request's tokens, as the supervisor read them (hooks/usage.py's UsageRecord)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: Annotated[str, Field(min_length=1, max_length=MAX_KEY)]
    model: Annotated[str, Field(min_length=1, max_length=MAX_MODEL)]
    ts: Annotated[float, Field(ge=0, le=MAX_TS, allow_inf_nan=False)]
    input: Count
    cached: Count
    output: Count
    reasoning: Count


def checked_records(records: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records in range, and a reason for each one refused."""
    accepted: list[dict[str, Any]] = []
    refused: list[str] = []
    for record in records:
        try:
            accepted.append(RecordIn.model_validate(record).model_dump())
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"]) or "record"
            refused.append(f"{where}: {error['msg'].lower()}")
    return accepted, refused


class UsageHost(Protocol):
    """What the usage part needs of the broker, and nothing more."""

    spec: PodSpec
    attention: AttentionDesk

    async def log(self, text: str, level: str = "info", origin: str | None = None) -> int | None: ...
    def maybe_wake(self, name: str) -> None: ...
    def publish(self, frame: dict[str, Any]) -> None: ...
    def remote_usage(self) -> list[tuple[str, str, list[int]]]: ...
    async def has_unread(self, name: str) -> bool: ...


class UsageOps:
    def __init__(self, host: UsageHost, usage: UsageStore) -> None:
        self.host = host
        self.usage = usage
        self.verdict: Verdict | None = None

    @op("user")
    async def op_usage_report(
        self, agent: str, *, of: Name, path: Annotated[str, Field(min_length=1, max_length=4096)],
        inode: Int64, offset: Annotated[int, Field(ge=0)], state: dict[str, Any],
        records: Annotated[list[Any], Field(max_length=MAX_RECORDS)],
    ) -> UsageReported:
        """Store a batch read from one file, with the file's new position. A record out of range
        (a corrupt line) is refused alone and counted in `refused`: it never fails the batch, so
        one bad line cannot stop a pod's accounting (and its budgets)."""
        accepted, refused = checked_records(records)
        if refused:
            log.warning("usage of %s: %d records refused (%s)", of, len(refused), refused[0])
        added = await self.usage.add(of, path, inode=inode, offset=offset, state=state, records=accepted)
        if added:
            await self.judge_budgets(changed={of})
        return {"added": added, "refused": len(refused)}

    @op("user")
    async def op_usage_cursors(self, agent: str) -> UsageCursors:
        return {"files": await self.usage.cursors()}

    @op("user")
    async def op_usage(self, agent: str, since: Seconds = 0.0) -> UsageRows:
        """Usage per agent, model and hour since `since` (epoch seconds), with the pricing it is priced by."""
        return {
            "rows": await self.usage.rows(since), "pricing": self._pricing(), "limits": self.budget_limits(),
            "now": time.time(),
        }

    def _pricing(self) -> dict[str, dict[str, float]]:
        return {name: price.model_dump() for name, price in self.host.spec.pricing.items()}

    def budget_limits(self) -> dict[str, Any]:
        limits = self.host.spec.limits
        return {"budget_usd": limits.budget_usd, "budget_tokens_per_agent": limits.budget_tokens_per_agent}

    async def judge_budgets(self, changed: set[str] | None = None) -> None:
        """Evaluate the budgets on all usage so far: give new notices, wake agents a raised limit frees,
        and tell subscribers (the live view) whose usage or budget state changed."""
        rows = await self.usage.totals() + self.host.remote_usage()
        totals = [(agent, model, Tokens(*values)) for agent, model, values in rows]
        before = self.verdict.over if self.verdict else {}
        self.verdict = evaluate(self.host.spec, totals)
        moved = set(changed or ()) | {n for n in {*before, *self.verdict.over} if before.get(n) != self.verdict.over.get(n)}
        now = time.time()
        for name in sorted(moved):
            self.host.publish(wire.event("usage", {"name": name, "usage": self.usage_of(name),
                                              "over_budget": self.over_budget(name), "ts": now}))
        noticed = await self.usage.noticed()
        fresh = [n for n in self.verdict.notices if n.key not in noticed]
        if fresh:
            await self.usage.add_notices([n.key for n in fresh], time.time())
            for notice in fresh:
                await self.host.log(notice.text, notice.level, origin="budget")
                if notice.over:
                    self.host.attention.notify_over_budget(list(notice.over), notice.text)
        for name in before:
            if name not in self.verdict.over and await self.host.has_unread(name):
                self.host.maybe_wake(name)

    async def save_pricing(self) -> None:
        """Keep the pricing and limits applied, for `status` and `usage` of the pod once it is down, and
        the routes' names (shell completion of `send --to` reads them without a broker or the pod file)."""
        await self.usage.save_settings({"pricing": self._pricing(), "limits": self.budget_limits(),
                                        "routes": [route.name for route in self.host.spec.routes]})

    def over_budget(self, name: str) -> str | None:
        return self.verdict.over.get(name) if self.verdict else None

    def usage_of(self, name: str) -> UsageTotals | None:
        summary = self.verdict.agents.get(name) if self.verdict else None
        return summary.as_json() if summary else None
