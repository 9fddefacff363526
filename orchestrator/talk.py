"""Talking to a pod as its owner (the member `user`): send a message, read the transcript.

Standard library, the wire protocol and the pod lookup only: `podctl send` and `podctl tail`
(which the transcript window runs) import nothing heavier, so they start at close to the speed
of a bare interpreter (orchestrator/cli/fast.py).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from podctl.broker import wire
from podctl.broker.paths import USER
from podctl.pods import layout
from podctl.pods.errors import PodctlError, UsageError

from .podref import find

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` and `json` are not imported by `podctl send` (its start-up is its cost)
    from collections.abc import Mapping
    from typing import Any

    from podctl.broker.records import AskStatus, Message

Emit = Callable[[str], None]


class BrokerDown(wire.BrokerUnavailable, PodctlError):
    """The pod's broker cannot be reached: says how to start it (and is still a BrokerUnavailable)."""


class OwnerClient(wire.Client):
    """The pod's owner's client: an unreachable broker raises BrokerDown, which says how to start it."""

    def _call(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        try:
            return super()._call(op, timeout, **args)
        except wire.BrokerUnavailable:
            pod = Path(self.socket_path).parent.name
            raise BrokerDown(
                f"the broker of pod {pod!r} is not running: start the pod with `podctl resume {pod}` (or `podctl up`)"
            ) from None

    if not TYPE_CHECKING:
        call = _call


def user_client(pod: str, timeout: float = 10.0) -> OwnerClient:
    """A client acting as the pod's owner (the pod must exist; its broker may be down)."""
    paths = find(pod)
    try:
        token = paths.read_token(USER)
    except FileNotFoundError:
        raise PodctlError(f"pod {paths.pod!r} has no owner token yet: bring it up with `podctl up`") from None
    return OwnerClient(paths.socket, USER, token, timeout=timeout)


def send(
    pod: str, text: str, to: list[str], *, ask: bool = False, urgent: bool = False, wait: float | None = None
) -> dict[str, Any]:
    """Send a tell (or an ask, waiting `wait` seconds for its reply); returns the broker's answer.
    Every argument is checked first: what is refused was not sent."""
    check_wait(wait, ask)
    if not to:
        raise UsageError("name the recipients with --to (an agent, a route, or all): nothing was sent")
    if text == "-":
        text = _stdin_text()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the message is not valid UTF-8 text: nothing was sent") from None
    target: str | list[str] = to[0] if len(to) == 1 else to
    with user_client(pod) as client:
        result: dict[str, Any] = {}
        if ask:
            result.update(client.call("ask", to=target, text=text))
        else:
            result.update(client.call("tell", to=target, text=text, urgent=urgent))
        if ask and wait:
            result["reply"] = _wait_for_reply(client, result["ask_id"], wait)
    return result


def check_wait(wait: float | None, ask: bool) -> None:
    if wait is None:
        return
    if not ask:
        raise UsageError("--wait waits for the reply to an ask: add --ask (nothing was sent)")
    if not math.isfinite(wait) or wait < 0:
        raise UsageError(f"--wait takes a number of seconds, 0 or more, not {wait:g}: nothing was sent")


def _stdin_text() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise UsageError("standard input is not UTF-8 text: nothing was sent") from None


def _wait_for_reply(client: wire.Client, ask_id: int, wait: float) -> AskStatus:
    """Wait up to `wait` seconds, in calls the broker accepts (each at most wire.MAX_WAIT_MS)."""
    deadline = time.monotonic() + wait
    while True:
        chunk = max(0.0, min(deadline - time.monotonic(), wire.MAX_WAIT_MS / 1000))
        reply = client.call("wait_for_reply", timeout=chunk + 10, ask_id=ask_id, timeout_ms=int(chunk * 1000))
        if reply["status"] != "timeout" or time.monotonic() >= deadline:
            return reply


def sent_lines(result: dict[str, Any], ask: bool, wait: float | None) -> list[str]:
    states = ", ".join(
        f"{r['name']} ({r['state']}{', over budget: ' + r['over_budget'] if r.get('over_budget') else ''})"
        for r in result["recipients"]
    )
    label = f"ask #{result['ask_id']}" if ask else f"message #{result['message_id']}"
    lines = [f"{label} queued for {states}"]
    lines += [f"reply from {reply['from']}: {reply['text']}" for reply in (result.get("reply") or {}).get("replies", [])]
    if unanswered(result):
        reply = result["reply"]
        waiting = ", ".join(reply.get("waiting_on") or []) or "nobody"
        state = "expired" if reply["status"] == "expired" else "still open"
        later = " (a later reply shows in `podctl tail`)" if state == "still open" else ""
        lines.append(f"no reply within {wait:g}s: ask #{result['ask_id']} is {state}, waiting on {waiting}{later}")
    return lines


def unanswered(result: dict[str, Any]) -> bool:
    """`send --ask --wait` ended without the reply it waited for (exit status exits.NO_REPLY)."""
    reply = result.get("reply")
    return reply is not None and reply["status"] != "replied"


def tail(pod: str, emit: Emit, note: Emit, *, follow: bool = False, as_json: bool = False, last: int = 0) -> None:
    """Print the history (from the broker, or from the store when the pod is down), then with
    `follow` every new event, riding out broker restarts."""
    with user_client(pod) as client:
        try:
            client.call("hello")
        except wire.BrokerUnavailable:
            cursor = _stored(client, as_json, last, emit, note)
        else:
            cursor = _live(client, as_json, last, emit)
        if follow:
            _follow(client, cursor, as_json, emit)


def _line(message: Message | dict[str, Any], as_json: bool) -> str:
    from podctl.broker.transcript import format_message

    return json_line(message) if as_json else format_message(message)


def json_line(value: Mapping[str, Any]) -> str:
    """One JSON line (`--json`); `json` is imported only for it."""
    import json

    return json.dumps(value, ensure_ascii=False)


def _live(client: wire.Client, as_json: bool, last: int, emit: Emit) -> int:
    """Print the history from the running broker; returns the cursor after it."""
    cursor = 0
    if last:
        cursor = max(0, (client.call("status")["last_message_id"] or 0) - last)
    while True:
        page = client.call("history", since=cursor, limit=1000)
        for message in page["messages"]:
            emit(_line(message, as_json))
        cursor = int(page["next"])
        if not page["more"]:
            return cursor


def _stored(client: wire.Client, as_json: bool, last: int, emit: Emit, note: Emit) -> int:
    """Print the history of a pod that is down, straight from its store (read-only)."""
    from podctl.broker.readonly import ReadOnlyStore

    folder = Path(client.socket_path).parent
    note(f"(pod {folder.name} is down: its history, from {folder / layout.DB})")
    with ReadOnlyStore(folder / layout.DB) as store:
        cursor = 0
        if last:
            cursor = max(0, (store.overview()["last_message_id"] or 0) - last)
        while True:
            page = store.history(cursor, 1000)
            for message in page.messages:
                emit(_line(message, as_json))
                cursor = message["id"]
            if not page.more:
                return cursor


def _follow(client: wire.Client, cursor: int, as_json: bool, emit: Emit) -> None:
    from podctl.broker.transcript import format_event

    while True:
        try:
            for frame in client.events(since=cursor):
                if frame["event"] == "message":
                    cursor = max(cursor, frame["data"]["id"])
                if as_json:
                    emit(json_line(frame))
                elif line := format_event(frame):
                    emit(line)
        except wire.BrokerUnavailable:
            emit("… broker unreachable; waiting for it to come back (Ctrl-C to stop)")
            while True:
                try:
                    client.call("hello")
                    break
                except wire.BrokerUnavailable:
                    time.sleep(0.5)
