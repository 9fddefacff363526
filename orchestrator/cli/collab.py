"""CLI commands of collaboration: `handoff`, `rules` (list, reset)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from . import complete
from .bus import PodArg, user_client
from .table import Column


def handoff(
    pod: PodArg,
    source: Annotated[str, typer.Argument(metavar="FROM", help="the agent whose thread moves",
                                                      autocompletion=complete.agents)],
    target: Annotated[str, typer.Argument(metavar="TO", help="the agent that takes it over",
                                                    autocompletion=complete.agents)],
    reason: Annotated[str, typer.Option(metavar="TEXT", help="why, shown to TO")] = "asked by the user",
) -> None:
    """Move FROM's thread to TO: TO gets FROM's role, the recent conversation and the task, and is woken."""
    with user_client(pod) as client:
        result = client.call("handoff", **handoff_args(source, target, reason))
    typer.echo(f"{result['from']} handed off to {result['to']} (message #{result['message_id']})")


def _round_colour(text: str) -> str | None:
    done, _, limit = text.partition("/")
    return "red" if done == limit else None


RULE_COLUMNS = [
    Column("RULE", "rule"), Column("ON", "on"), Column("FOR", "agent"), Column("ROUND", "round", _round_colour, right=True),
    Column("OPEN ASK", "open_ask"),
]


def rules_list(
    pod: PodArg,
    as_json: Annotated[bool, typer.Option(
        "--json",
        help="print one JSON object: {rules: [{name, on, agent, rounds, max_rounds, open_ask, ...}]} (for scripts)",
    )] = False,
) -> None:
    """Each rule with its rounds so far and its open ask."""
    from .table import colour_wanted, render

    with user_client(pod) as client:
        result = client.call("rules")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if not result["rules"]:
        typer.echo(f"pod {pod} has no rules (`rules:` in the pod file, see docs/pod-file.md)")
        return
    rows = [{
        "rule": rule["name"], "on": rule["on"], "agent": rule["agent"] or "any agent",
        "round": f"{rule['rounds']}/{rule['max_rounds']}", "open_ask": f"#{rule['open_ask']}" if rule["open_ask"] else "",
    } for rule in result["rules"]]
    for line in render(RULE_COLUMNS, rows, colour_wanted()):
        typer.echo(line)


def rules_reset(pod: PodArg, name: Annotated[str, typer.Argument(help="the rule")]) -> None:
    """Let a rule that reached max_rounds fire again."""
    with user_client(pod) as client:
        client.call("reset_rule", name=name)
    typer.echo(f"rule {name} reset")


def register(app: typer.Typer) -> None:
    app.command()(handoff)
    rules = typer.Typer(help="Auto-ask rules of a running pod.", no_args_is_help=True)
    app.add_typer(rules, name="rules")
    rules.command("list")(rules_list)
    rules.command("reset")(rules_reset)


def handoff_args(source: str, target: str, reason: str) -> dict[str, Any]:
    """`from` is a keyword of Python: the arguments as a dict."""
    return {"from": source, "to": target, "reason": reason}
