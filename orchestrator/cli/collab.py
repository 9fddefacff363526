"""CLI commands of collaboration: `handoff`, `rules` (list, reset)."""

from __future__ import annotations

from typing import Annotated

import typer

from .bus import PodArg, call_or_exit, user_client


def handoff(
    pod: PodArg,
    source: Annotated[str, typer.Argument(metavar="FROM", help="the agent whose thread moves")],
    target: Annotated[str, typer.Argument(metavar="TO", help="the agent that takes it over")],
    reason: Annotated[str, typer.Option(help="why, shown to TO")] = "asked by the user",
) -> None:
    """Move FROM's thread to TO: TO gets FROM's role, the recent conversation and the task, and is woken."""
    with user_client(pod) as client:
        result = call_or_exit(client, "handoff", **{"from": source, "to": target, "reason": reason})
    typer.echo(f"{result['from']} handed off to {result['to']} (message #{result['message_id']})")


def rules_list(pod: PodArg) -> None:
    """Each rule with its rounds so far and its open ask."""
    with user_client(pod) as client:
        result = call_or_exit(client, "rules")
    for rule in result["rules"]:
        open_ask = f", open ask #{rule['open_ask']}" if rule["open_ask"] else ""
        typer.echo(f"{rule['name']:<20} on {rule['on']:<12} for {rule['agent'] or 'any agent'}:"
                   f" round {rule['rounds']}/{rule['max_rounds']}{open_ask}")


def rules_reset(pod: PodArg, name: Annotated[str, typer.Argument(help="the rule")]) -> None:
    """Let a rule that reached max_rounds fire again."""
    with user_client(pod) as client:
        call_or_exit(client, "reset_rule", name=name)
    typer.echo(f"rule {name} reset")


def register(app: typer.Typer) -> None:
    app.command()(handoff)
    rules = typer.Typer(help="Auto-ask rules of a running pod.", no_args_is_help=True)
    app.add_typer(rules, name="rules")
    rules.command("list")(rules_list)
    rules.command("reset")(rules_reset)
