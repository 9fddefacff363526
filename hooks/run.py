"""`podctl hook CLI EVENT`: report busy/idle to the broker and inject new messages. Standard library only.

It never breaks its CLI: whatever goes wrong (no broker, a slow broker, bad input), it exits 0
quickly with nothing injected. Messages are claimed, printed, then acknowledged: a hook that
dies before printing leaves them to be offered again.
"""

from __future__ import annotations

import os
import sys

from podctl.broker import codec, wire

from .format import injection
from .hookio import load_adapter

DEFAULT_TIMEOUT_MS = 90


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("--state", "--agent"):
            opts[arg[2:]] = next(it, "")
        else:
            rest.append(arg)
    return opts, rest


def _read_payload() -> dict[str, object]:
    if sys.stdin is None or sys.stdin.isatty():
        return {}
    try:
        data = sys.stdin.read()
        payload = codec.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _log(state: str | None, text: str) -> None:
    if not state:
        return
    import time

    try:
        with open(os.path.join(state, "logs", "hooks.log"), "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass


def main(argv: list[str]) -> int:
    opts, rest = _parse(argv)
    state = opts.get("state") or os.environ.get("PODCTL_STATE")
    agent = opts.get("agent") or os.environ.get("PODCTL_AGENT")
    if len(rest) != 2 or not state or not agent:
        print("usage: podctl hook --state POD_STATE_DIR --agent NAME CLI EVENT", file=sys.stderr)
        return 0
    cli, cli_event = rest
    payload = _read_payload()
    try:
        adapter = load_adapter(cli)
    except (KeyError, ImportError) as exc:
        _log(state, f"{agent} {cli} {cli_event}: {exc}")
        return 0
    try:
        outcome = adapter.hook_event(cli_event, payload)
        text = None
        response: dict[str, object] = {}
        client = None
        if outcome.event is not None:
            timeout = int(os.environ.get("PODCTL_HOOK_TIMEOUT_MS") or DEFAULT_TIMEOUT_MS) / 1000.0
            with open(os.path.join(state, "agents", agent, "token"), encoding="utf-8") as fh:
                token = fh.read().strip()
            client = wire.Client(os.path.join(state, "broker.sock"), agent, token, timeout=timeout)
            response = client.call(
                "hook", event=outcome.event, inject=outcome.inject, attention_only=outcome.attention_only
            )
            text = injection(response)
        out = adapter.render(cli_event, payload, text)
        if out:
            sys.stdout.write(out)
            sys.stdout.flush()
        if client is not None and response.get("claim"):
            client.call("ack_injected", claim=response["claim"])
        if client is not None:
            client.close()
    except (wire.BrokerUnavailable, wire.BrokerError, OSError, ValueError) as exc:
        _log(state, f"{agent} {cli} {cli_event}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a hook never breaks its CLI
        _log(state, f"{agent} {cli} {cli_event}: unexpected {exc!r}")
    return 0
