"""Token usage in one meaning for every CLI, and what it costs. Standard library only.

The CLIs count differently (docs/usage.md); their adapters turn each record into `Tokens` with:
- `input`: input tokens not read from a cache (cache writes included),
- `cached`: input tokens read from a cache,
- `output`: output tokens, reasoning included,
- `reasoning`: the reasoning (thinking) part of `output`, for information,
- `requests`: model requests.
Cost = input x price.input + cached x price.cached_input + output x price.output, per million.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypedDict

from .prices import PRICES

FIELDS = ("input", "cached", "output", "reasoning", "requests")


class TokenCounts(TypedDict):
    """Tokens as `podctl usage --json` and `status --json` name them."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    requests: int


class UsageTotals(TokenCounts):
    """An agent's or the pod's usage and cost so far (`status`; broker/records.py)."""

    cost_usd: float | None
    """None when a model has no price."""
    cost_usd_known_part: float
    unpriced_models: list[str]

MAX_KEY = 256
MAX_MODEL = 128
MAX_COUNT = 10**12
"""Tokens of one model request: a count above this is a corrupt line, not a request."""
MAX_TS = 10.0**11
COUNTS = ("input", "cached", "output", "reasoning")


def record_problem(record: Mapping[str, object]) -> str | None:
    """Why one usage record (hooks/usage.py's `as_wire` shape) is out of range, or None: the
    store refuses such a record alone (broker/usage_ops.py), and the follower skips its line."""
    key, model, ts = record.get("key"), record.get("model"), record.get("ts")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        return f"its key is not 1 to {MAX_KEY} characters long"
    if not isinstance(model, str) or not 1 <= len(model) <= MAX_MODEL:
        return f"its model name is not 1 to {MAX_MODEL} characters long"
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 <= ts <= MAX_TS:
        return "its time is not in epoch seconds"
    for name in COUNTS:
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            return f"its {name} tokens are not between 0 and {MAX_COUNT:,}"
    return None
_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})\Z")


@dataclass
class Tokens:
    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0
    requests: int = 0

    def add(self, other: Tokens) -> Tokens:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def total(self) -> int:
        """What a token budget counts: every input token, cached or not, and every output token."""
        return self.input + self.cached + self.output

    def as_json(self) -> TokenCounts:
        """The names `podctl usage --json` and `status --json` use."""
        return {
            "input_tokens": self.input, "cached_input_tokens": self.cached, "output_tokens": self.output,
            "reasoning_tokens": self.reasoning, "requests": self.requests,
        }

    @classmethod
    def of(cls, row: Mapping[str, object]) -> Tokens:
        """From a store row (`input`, `cached`, `output`, `reasoning`, `requests`)."""
        values = [row.get(name) for name in FIELDS]
        return cls(*(v if isinstance(v, int) else 0 for v in values))


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float


def price_of(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> Price | None:
    """The model's price: the pod file's `pricing`, else the shipped table; a dated model name
    (`claude-sonnet-4-5-20250929`) falls back to its undated one. None: unknown, never guessed."""
    found = _priced(model, overrides)
    return found[1] if found else None


def price_source(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> str | None:
    """Where the model's price comes from: `pod` (the pod file's `pricing`), `shipped` (pods/prices.py), None."""
    found = _priced(model, overrides)
    return found[0] if found else None


def _priced(model: str, overrides: Mapping[str, Mapping[str, float]] | None) -> tuple[str, Price] | None:
    overrides = overrides or {}
    for name in dict.fromkeys((model, _undated(model))):
        if name in overrides:
            entry = overrides[name]
            return "pod", Price(float(entry["input"]), float(entry["cached_input"]), float(entry["output"]))
        if name in PRICES:
            return "shipped", Price(*PRICES[name])
    return None


def _undated(model: str) -> str:
    name = model.strip().lower().removeprefix("models/")
    return _DATE_SUFFIX.sub("", name.split("@", 1)[0])


def cost(tokens: Tokens, price: Price | None) -> float | None:
    if price is None:
        return None
    return (tokens.input * price.input + tokens.cached * price.cached_input + tokens.output * price.output) / 1e6


@dataclass
class Summary:
    """Tokens and cost of a group of (model, tokens) rows; `unpriced` names models without a price."""

    tokens: Tokens
    cost_usd: float
    unpriced: list[str]

    @property
    def cost_known(self) -> bool:
        return not self.unpriced

    def as_json(self) -> UsageTotals:
        return {**self.tokens.as_json(), "cost_usd": round(self.cost_usd, 6) if self.cost_known else None,
                "cost_usd_known_part": round(self.cost_usd, 6), "unpriced_models": self.unpriced}


def summarize(rows: Iterable[tuple[str, Tokens]], overrides: Mapping[str, Mapping[str, float]] | None = None) -> Summary:
    total, spent, unpriced = Tokens(), 0.0, []
    for model, tokens in rows:
        total.add(tokens)
        value = cost(tokens, price_of(model, overrides))
        if value is None:
            if tokens.total and model not in unpriced:
                unpriced.append(model)
        else:
            spent += value
    return Summary(total, spent, sorted(unpriced))


GROUPINGS = ("agent", "model", "hour")


def report(rows: Iterable[Mapping[str, object]], overrides: Mapping[str, Mapping[str, float]] | None = None,
           by: str = "agent") -> dict[str, object]:
    """`podctl usage --json` from the store's rows (agent, model, hour, the counts): each agent's
    tokens and cost, the pod's totals, and the rows grouped `by` agent, model or hour."""
    rows = list(rows)
    pairs = [(str(r["model"]), Tokens.of(r)) for r in rows]
    agents: dict[str, list[tuple[str, Tokens]]] = {}
    groups: dict[object, list[tuple[str, Tokens]]] = {}
    for row, pair in zip(rows, pairs, strict=True):
        agents.setdefault(str(row["agent"]), []).append(pair)
        groups.setdefault(row[by], []).append(pair)
    return {
        "agents": {name: summarize(items, overrides).as_json() for name, items in agents.items()},
        "total": summarize(pairs, overrides).as_json(),
        "by": by,
        "groups": [{by: key, **summarize(items, overrides).as_json()} for key, items in sorted(groups.items(), key=_order)],
    }


def _order(item: tuple[object, object]) -> tuple[str, object]:
    key = item[0]
    return (type(key).__name__, key)


def total_of(usage: Mapping[str, object]) -> int:
    """`Tokens.total` of a `usage` entry as `as_json` wrote it."""
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "cached_input_tokens", "output_tokens"))  # type: ignore[call-overload]


def usd(value: float) -> str:
    """Money with enough digits to mean something: `$1,234.50`, `$0.92`, `$0.0012` (two significant
    digits below a dollar, never fewer than two decimals), `$0.00`."""
    if value >= 1 or value <= 0:
        return f"${value:,.2f}"
    digits = min(10, max(2, 1 - math.floor(math.log10(value))))
    whole, _, cents = f"{value:.{digits}f}".partition(".")
    return f"${whole}.{cents.rstrip('0').ljust(2, '0')}"


def tokens_label(usage: Mapping[str, object] | None) -> str:
    """An agent's tokens in a table cell: `171`, `7.5k`, `785k`, `1.2M`; `-` before any use."""
    if not usage:
        return "-"
    tokens = total_of(usage)
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if tokens >= size:
            value = tokens / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(tokens)


def cost_label(usage: Mapping[str, object] | None) -> str:
    """An agent's cost in a table cell: `$0.92`; `$0.90+?` when a model it used has no price
    (`?` when none has); `-` before any use."""
    if not usage:
        return "-"
    cost = usage.get("cost_usd")
    if isinstance(cost, (int, float)):
        return usd(cost)
    known = usage.get("cost_usd_known_part")
    return f"{usd(known)}+?" if isinstance(known, (int, float)) and known > 0 else "?"
