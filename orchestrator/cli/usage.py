"""CLI commands `usage` (tokens and cost of a pod's agents) and `prices` (the shipped price table)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from podctl.pods.errors import UsageError

from .bus import PodArg


def usage(
    pod: PodArg,
    since: Annotated[str | None, typer.Option(
        metavar="DURATION", help="only the last 30m, 1h, 1d, ... (default: since the pod was made)",
    )] = None,
    by: Annotated[str, typer.Option(metavar="agent|model|hour", help="group the rows by agent, model or hour")] = "agent",
    as_json: Annotated[bool, typer.Option(
        "--json", help="one JSON object: per agent and in total input_tokens, cached_input_tokens, output_tokens,"
        " reasoning_tokens, requests and cost_usd (null when a model has no price), and the rows grouped --by",
    )] = False,
) -> None:
    """Tokens and cost per agent (or model, or hour), read from the CLIs' own records; works while the pod is down."""
    from podctl.orchestrator import usage_report
    from podctl.orchestrator.pod import find
    from podctl.pods.durations import seconds
    from podctl.pods.usage import GROUPINGS

    if by not in GROUPINGS:
        raise UsageError(f"--by takes one of {', '.join(GROUPINGS)}, not {by!r}")
    try:
        since_s = seconds(since) if since is not None else None
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    data = usage_report.usage(find(pod), since_s, by)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for line in usage_report.lines(data):
        typer.echo(line)


def prices(
    as_json: Annotated[bool, typer.Option(
        "--json", help="one JSON object: as_of, and usd_per_million_tokens {input, cached_input, output} per model")] = False,
) -> None:
    """The prices podctl ships (USD per million tokens, with their date); a pod file's `pricing:` overrides them."""
    from podctl.orchestrator import usage_report

    if as_json:
        typer.echo(json.dumps(usage_report.price_table(), indent=2))
        return
    for line in usage_report.price_lines():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command()(usage)
    app.command()(prices)
