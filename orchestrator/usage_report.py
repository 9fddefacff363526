"""`podctl usage`: tokens and cost per agent, model or hour, from the running broker or, when the pod
is down, from its store (priced as the broker last priced it)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from podctl.broker import wire
from podctl.broker.paths import USER, PodPaths
from podctl.broker.readonly import ReadOnlyStore
from podctl.pods.prices import PRICES, PRICES_AS_OF
from podctl.pods.usage import price_source, report, usd

COLUMNS = (("IN", "input_tokens"), ("CACHED", "cached_input_tokens"), ("OUT", "output_tokens"),
           ("REASONING", "reasoning_tokens"), ("REQUESTS", "requests"))


def usage(paths: PodPaths, since_s: float | None, by: str) -> dict[str, Any]:
    since = time.time() - since_s if since_s is not None else 0.0
    limits: dict[str, Any] | None
    try:
        with wire.Client(paths.socket, USER, paths.read_token(USER), timeout=10.0) as client:
            answer = client.call("usage", since=since)
            names = [a["name"] for a in client.call("status")["agents"]]
        rows, pricing, limits = answer["rows"], answer["pricing"], answer["limits"]
    except (OSError, wire.BrokerError):
        with ReadOnlyStore(paths.db) as store:
            rows, settings = store.usage(since), store.settings()
            names = [a["name"] for a in store.overview()["agents"] if not a["removed"]]
        pricing, limits = settings.get("pricing") or {}, settings.get("limits")
    data = report(rows, pricing, by)
    agents: dict[str, Any] = data["agents"]  # type: ignore[assignment]
    zero = report([], pricing)["total"]
    data["agents"] = {**{name: zero for name in names}, **agents}
    return {"pod": paths.pod, "since": since or None, **data, "budget": limits, "prices": prices_used(rows, pricing)}


def prices_used(rows: list[dict[str, Any]], pricing: dict[str, Any]) -> dict[str, Any]:
    """Which models were priced by the pod file's `pricing` and which by podctl's shipped table."""
    used: dict[str, list[str]] = {"pod_file": [], "shipped": []}
    for model in sorted({str(row["model"]) for row in rows}):
        source = price_source(model, pricing)
        if source is not None:
            used["pod_file" if source == "pod" else "shipped"].append(model)
    return {**used, "shipped_as_of": PRICES_AS_OF}


def prices_said(used: dict[str, Any]) -> str:
    """The usage table's note on its prices: the pod file's, podctl's shipped ones, or both."""
    shipped = f"podctl's list prices of {used['shipped_as_of']} (`podctl prices`)"
    if used["pod_file"] and used["shipped"]:
        return f"the pod file's pricing for {', '.join(used['pod_file'])}, {shipped} for the rest"
    return "the pod file's pricing" if used["pod_file"] else shipped


def lines(data: dict[str, Any]) -> list[str]:
    by = data["by"]
    since = (f" since {datetime.fromtimestamp(data['since']).strftime('%Y-%m-%d %H:%M')}"
             if data["since"] else "")
    if not data["groups"]:
        return [f"pod {data['pod']}: no usage recorded{since}"]
    head = [by.upper(), *(name for name, _ in COLUMNS), "COST"]
    rows = [[_label(by, g[by]), *(f"{g[key]:,}" for _, key in COLUMNS), _cost(g)] for g in data["groups"]]
    rows.append(["total", *(f"{data['total'][key]:,}" for _, key in COLUMNS), _cost(data["total"])])
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    out = [f"usage of pod {data['pod']}{since}, by {by} (cost in USD at {prices_said(data['prices'])})"]
    for row in [head, *rows]:
        cells = [str(row[0]).ljust(widths[0]), *(str(c).rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True))]
        out.append("  ".join([*cells, str(row[-1])]).rstrip())
    return out


def _label(by: str, value: Any) -> str:
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:00") if by == "hour" else str(value)


def _cost(summary: dict[str, Any]) -> str:
    if summary["cost_usd"] is not None:
        return usd(summary["cost_usd"])
    known, unpriced = summary["cost_usd_known_part"], ", ".join(summary["unpriced_models"])
    return f"{usd(known)} + unknown ({unpriced}: no price)" if known else f"unknown ({unpriced}: no price)"


def price_lines() -> list[str]:
    """`podctl prices`: the shipped table."""
    head = ["MODEL", "INPUT", "CACHED INPUT", "OUTPUT"]
    rows = [[model, *(f"{value:g}" for value in prices)] for model, prices in PRICES.items()]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    out = [f"podctl's list prices of {PRICES_AS_OF}, USD per million tokens (a pod file's `pricing:` overrides"
           " any of them and adds models; docs/usage.md)"]
    for row in [head, *rows]:
        out.append("  ".join([row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]))
    return out


def price_table() -> dict[str, Any]:
    """`podctl prices --json`."""
    return {"as_of": PRICES_AS_OF, "usd_per_million_tokens": {
        model: {"input": i, "cached_input": c, "output": o} for model, (i, c, o) in PRICES.items()}}
