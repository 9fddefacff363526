"""CLI commands of the message bus: `broker run`, `send`, `tail`, `prune`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from podctl.broker import wire
from podctl.broker.paths import USER
from podctl.pods.errors import PodctlError, UsageError


def user_client(pod: str, timeout: float = 10.0) -> wire.Client:
    """A client acting as the pod's owner (the pod must exist; its broker may be down)."""
    from podctl.orchestrator.pod import find

    paths = find(pod)
    try:
        token = paths.read_token(USER)
    except FileNotFoundError:
        raise PodctlError(f"pod {paths.pod!r} has no owner token yet: bring it up with `podctl up`") from None
    return wire.Client(paths.socket, USER, token, timeout=timeout)


def call_or_exit(client: wire.Client, op: str, **args: Any) -> dict[str, Any]:
    try:
        return client.call(op, **args)
    except wire.BrokerUnavailable:
        pod = Path(client.socket_path).parent.name
        raise PodctlError(
            f"the broker of pod {pod!r} is not running: start the pod with `podctl resume {pod}` (or `podctl up`)"
        ) from None


PodArg = Annotated[str, typer.Argument(help="the pod")]


def broker_run(pod_file: Annotated[Path, typer.Argument(help="the pod file")]) -> None:
    """Run the pod's broker in the foreground, logging to stderr."""
    from podctl.orchestrator.broker_main import run

    raise typer.Exit(run(pod_file))


def send(
    pod: PodArg,
    text: Annotated[str, typer.Argument(help="the message; - reads standard input")],
    to: Annotated[list[str], typer.Option("--to", help="an agent, a route, or all (repeatable)")],
    ask: Annotated[bool, typer.Option("--ask", help="send an ask (the recipient is woken to answer)")] = False,
    urgent: Annotated[bool, typer.Option("--urgent", help="wake the recipient even if idle")] = False,
    wait: Annotated[float | None, typer.Option(help="with --ask: wait this many seconds for the reply")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the broker's answer as one JSON object")] = False,
) -> None:
    """Send a message to the pod's agents as the human member `user`."""
    if wait is not None and not ask:
        raise UsageError("--wait waits for the reply to an ask: add --ask")
    if text == "-":
        text = sys.stdin.read()
    target: str | list[str] = to[0] if len(to) == 1 else to
    with user_client(pod) as client:
        if ask:
            result = call_or_exit(client, "ask", to=target, text=text)
        else:
            result = call_or_exit(client, "tell", to=target, text=text, urgent=urgent)
        if ask and wait:
            result["reply"] = call_or_exit(
                client, "wait_for_reply", timeout=wait + 10, ask_id=result["ask_id"], timeout_ms=int(wait * 1000)
            )
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    states = ", ".join(f"{r['name']} ({r['state']})" for r in result["recipients"])
    label = f"ask #{result['ask_id']}" if ask else f"message #{result['message_id']}"
    typer.echo(f"{label} queued for {states}")
    for reply in (result.get("reply") or {}).get("replies", []):
        typer.echo(f"reply from {reply['from']}: {reply['text']}")
    if ask and wait and result["reply"]["status"] != "replied":
        typer.echo(f"no reply yet ({result['reply']['status']}); waiting on {', '.join(result['reply']['waiting_on'])}")


def tail(
    pod: PodArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new messages as they come")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object a line (messages, then events)")] = False,
    last: Annotated[int, typer.Option("--last", "-n", help="start with the last N messages (0: all)")] = 0,
) -> None:
    """Print the pod's message history with delivery states; --follow streams it live."""

    def emit(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    with user_client(pod) as client:
        try:
            client.call("hello")
        except wire.BrokerUnavailable:
            cursor = _tail_stored(client, as_json, last, emit)
        else:
            cursor = _tail_live(client, as_json, last, emit)
        if follow:
            _follow(client, cursor, as_json, emit)


def _follow(client: wire.Client, cursor: int, as_json: bool, emit: Any) -> None:
    """Stream events from the broker for as long as the user wants, riding out broker restarts."""
    from podctl.broker.transcript import format_event

    while True:
        try:
            for frame in client.events(since=cursor):
                if frame["event"] == "message":
                    cursor = max(cursor, frame["data"]["id"])
                if as_json:
                    emit(json.dumps(frame, ensure_ascii=False))
                elif line := format_event(frame):
                    emit(line)
        except wire.BrokerUnavailable:
            emit("… broker unreachable; waiting for it to come back (Ctrl-C to stop)")
            _wait_for_broker(client)


def prune(
    pod: PodArg,
    older_than: Annotated[
        str | None, typer.Option(help="delete history older than this (e.g. 30d, 12h); default: limits.retention_days")
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
        result = call_or_exit(client, "prune", **args)
    typer.echo(f"deleted {result['deleted']} messages")


def register(app: typer.Typer) -> None:
    broker_app = typer.Typer(help="Run a pod's broker by hand (debugging and tests).", no_args_is_help=True)
    app.add_typer(broker_app, name="broker")
    broker_app.command("run")(broker_run)
    for command in (send, tail, prune):
        app.command()(command)


def _tail_live(client: wire.Client, as_json: bool, last: int, emit: Any) -> int:
    """Print the history from the running broker; returns the cursor after it."""
    from podctl.broker.transcript import format_message

    cursor = 0
    if last:
        cursor = max(0, (call_or_exit(client, "status").get("last_message_id") or 0) - last)
    while True:
        page = call_or_exit(client, "history", since=cursor, limit=1000)
        for message in page["messages"]:
            emit(json.dumps(message, ensure_ascii=False) if as_json else format_message(message))
        cursor = int(page["next"])
        if not page["more"]:
            return cursor


def _tail_stored(client: wire.Client, as_json: bool, last: int, emit: Any) -> int:
    """Print the history of a pod that is down, straight from its store (read-only)."""
    from podctl.broker.store import ReadOnlyStore
    from podctl.broker.transcript import format_message

    folder = Path(client.socket_path).parent
    typer.echo(f"(pod {folder.name} is down: its history, from {folder / 'pod.db'})", err=True)
    with ReadOnlyStore(folder / "pod.db") as store:
        cursor = 0
        if last:
            cursor = max(0, (store.overview()["last_message_id"] or 0) - last)
        while page := store.history(cursor, 1000):
            for message in page:
                emit(json.dumps(message, ensure_ascii=False) if as_json else format_message(message))
            cursor = page[-1]["id"]
    return cursor


def _wait_for_broker(client: wire.Client) -> None:
    while True:
        try:
            client.call("hello")
            return
        except wire.BrokerUnavailable:
            time.sleep(0.5)
