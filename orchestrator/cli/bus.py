"""CLI commands of the message bus: `broker run`, `send`, `tail`, `prune` (thin: orchestrator/talk.py
does the work; `send` and `tail` also have a fast path that skips typer, cli/fast.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from podctl.orchestrator.talk import user_client
from podctl.pods.errors import UsageError

from . import complete
from .exits import NO_REPLY

__all__ = ["AgentArg", "PodArg", "register", "user_client"]

PodArg = Annotated[str, typer.Argument(help="the pod", autocompletion=complete.pods)]
AgentArg = Annotated[str, typer.Argument(help="the agent", autocompletion=complete.agents)]
SEND_JSON = "print the broker's answer as one JSON object: message id, ask id, recipients and their states"
TAIL_JSON = "print one JSON object a line: each message with its delivery states, then events (for scripts)"


def broker_run(
    pod_file: Annotated[Path, typer.Argument(help="the pod file")],
    site: Annotated[str | None, typer.Option("--site", metavar="NAME", help="the site this machine runs (docs/sites.md)")] = None,
) -> None:
    """Run the pod's broker in the foreground, logging to stderr."""
    from podctl.orchestrator.broker_main import run

    if site is not None:
        from podctl.broker.paths import PodPaths
        from podctl.orchestrator.lifecycle import choose_site, load

        spec = load(pod_file.resolve())
        paths = PodPaths.of(spec.name).ensure()
        paths.write_site(choose_site(spec, paths, site))
    raise typer.Exit(run(pod_file))


def send(
    pod: PodArg,
    text: Annotated[str, typer.Argument(help="the message; - reads standard input")],
    to: Annotated[list[str], typer.Option("--to", metavar="AGENT", help="an agent, a route, or all (repeatable)",
                                                  autocompletion=complete.recipients)],
    ask: Annotated[bool, typer.Option("--ask", help="send an ask (the recipient is woken to answer)")] = False,
    urgent: Annotated[bool, typer.Option("--urgent", help="wake the recipient even if idle")] = False,
    wait: Annotated[float | None, typer.Option(metavar="SECONDS",
        help="with --ask: wait this many seconds for the reply; exit status 3 if it does not come")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=SEND_JSON)] = False,
) -> None:
    """Send a message to the pod's agents as the human member `user`."""
    from podctl.orchestrator import talk

    result = talk.send(pod, text, to, ask=ask, urgent=urgent, wait=wait)
    lines = [json.dumps(result, ensure_ascii=False)] if as_json else talk.sent_lines(result, ask, wait)
    for line in lines:
        typer.echo(line)
    if talk.unanswered(result):
        raise typer.Exit(NO_REPLY)


def tail(
    pod: PodArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new messages as they come")] = False,
    as_json: Annotated[bool, typer.Option("--json", help=TAIL_JSON)] = False,
    last: Annotated[int, typer.Option("--last", "-n", metavar="N", help="start with the last N messages (0: all)")] = 0,
) -> None:
    """Print the pod's message history with delivery states; --follow streams it live."""
    from podctl.orchestrator import talk

    def emit(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    talk.tail(pod, emit, lambda line: typer.echo(line, err=True), follow=follow, as_json=as_json, last=last)


def ui(pod: PodArg) -> None:
    """The pod as it works: agents, the threaded conversation, open asks and rules (s send, a ask, q quit)."""
    from podctl.orchestrator.ui.app import run

    raise typer.Exit(run(pod))


def prune(
    pod: PodArg,
    older_than: Annotated[
        str | None,
        typer.Option(metavar="AGE", help="delete history older than this (e.g. 30d, 12h); default: limits.retention_days"),
    ] = None,
) -> None:
    """Delete old history from the pod's store."""
    from podctl.pods.durations import seconds

    args = {}
    if older_than is not None:
        try:
            args["older_than_s"] = seconds(older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    with user_client(pod) as client:
        result = client.call("prune", **args)
    typer.echo(f"deleted {result['deleted']} messages")


def register(app: typer.Typer) -> None:
    broker_app = typer.Typer(help="Run a pod's broker by hand (debugging and tests).", no_args_is_help=True)
    app.add_typer(broker_app, name="broker")
    broker_app.command("run")(broker_run)
    for command in (send, tail, ui, prune):
        app.command()(command)
