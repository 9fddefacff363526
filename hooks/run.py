"""`podctl hook CLI EVENT`: report busy/idle to the broker and inject new messages. Standard library only.

It never breaks its CLI: whatever goes wrong (no broker, a slow or trickling broker, stdin never
closed, bad or huge input), it exits 0 within one total deadline with nothing injected. Messages
are claimed, printed, then acknowledged: a hook that dies before printing leaves them to be
offered again.
"""

from __future__ import annotations

import os
import sys

from podctl.broker import codec, wire

from .format import injection
from .hookio import load_adapter

DEFAULT_TIMEOUT_MS = 90
"""Per broker call (PODCTL_HOOK_TIMEOUT_MS): how long one request may wait for its answer."""
DEFAULT_DEADLINE_MS = 2000
"""The whole hook (PODCTL_HOOK_DEADLINE_MS): read stdin, reach the broker, print, acknowledge."""
MAX_STDIN_BYTES = 4 * 1024 * 1024
"""A larger event on stdin is ignored (treated as empty): no CLI sends that much to a hook."""

_EXPECTED = (wire.BrokerUnavailable, wire.BrokerError, OSError, ValueError, KeyError, ImportError)


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("--state", "--agent", "--socket", "--token-file"):
            opts[arg[2:]] = next(it, "")
        else:
            rest.append(arg)
    return opts, rest


def _env_ms(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _read_stdin() -> bytes:
    """All of stdin, or b"" when it is a terminal, closed, or over MAX_STDIN_BYTES.

    Plain `os.read` on fd 0: a writer that never closes the pipe is cut off by the deadline alarm."""
    try:
        if os.isatty(0):
            return b""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(0, 65536)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_STDIN_BYTES:
                return b""
            chunks.append(chunk)
    except OSError:
        return b""


def _read_payload() -> dict[str, object]:
    """The CLI's event object from stdin; {} when there is none or it is not a usable JSON object."""
    data = _read_stdin().decode("utf-8", "replace")
    if not data.strip():
        return {}
    try:
        payload = codec.loads(data)
    except (ValueError, RecursionError):
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


def _arm_deadline(deadline_ms: int, state: str, where: str) -> object:
    """Exit 0 when `deadline_ms` has passed, wherever the hook is (a blocked read, recv or write is
    interrupted by SIGALRM). `_signal` rather than `signal`, which imports `enum`. Returns the
    previous SIGALRM handler for `_disarm_deadline`, or None when no alarm could be set (not the
    main thread: then only the per-call timeouts bound the hook)."""
    import _signal

    def expire(signum: int, frame: object) -> None:
        _signal.signal(_signal.SIGALRM, lambda *_: os._exit(0))
        _signal.setitimer(_signal.ITIMER_REAL, 0.25)
        _log(state, f"{where}: gave up after the {deadline_ms} ms deadline (PODCTL_HOOK_DEADLINE_MS)")
        os._exit(0)

    try:
        previous = _signal.signal(_signal.SIGALRM, expire)
        _signal.setitimer(_signal.ITIMER_REAL, deadline_ms / 1000.0)
    except (ValueError, OSError):
        return None
    return previous


def _disarm_deadline(previous: object) -> None:
    """Cancel the alarm (for callers that run the hook in their own process)."""
    if previous is None:
        return
    import _signal

    _signal.setitimer(_signal.ITIMER_REAL, 0)
    _signal.signal(_signal.SIGALRM, previous)


def _hook(socket: str, token_file: str, agent: str, cli: str, cli_event: str) -> None:
    """One hook run: read the CLI's event, tell the broker, print what to inject, acknowledge it."""
    payload = _read_payload()
    adapter = load_adapter(cli)
    outcome = adapter.hook_event(cli_event, payload)
    if outcome.event is None:
        _write(adapter.render(cli_event, payload, None))
        return
    timeout = _env_ms("PODCTL_HOOK_TIMEOUT_MS", DEFAULT_TIMEOUT_MS) / 1000.0
    with open(token_file, encoding="utf-8") as fh:
        token = fh.read().strip()
    with wire.Client(socket, agent, token, timeout=timeout) as client:
        response = client.call(
            "hook", event=outcome.event, inject=outcome.inject, attention_only=outcome.attention_only
        )
        _write(adapter.render(cli_event, payload, injection(response)))
        if response.get("claim"):
            client.call("ack_injected", claim=response["claim"])


def _write(out: str) -> None:
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    """`--socket PATH --token-file PATH --agent NAME CLI EVENT`: the agent's own identity only.
    (`--state POD_DIR` stands for the pod folder's socket and the agent's token in it.)"""
    opts, rest = _parse(argv)
    agent = opts.get("agent") or os.environ.get("PODCTL_AGENT")
    state_dir = opts.get("state")
    socket = opts.get("socket") or (os.path.join(state_dir, "broker.sock") if state_dir else None)
    token_file = opts.get("token-file") or (
        os.path.join(state_dir, "agents", agent, "token") if state_dir and agent else None
    )
    if len(rest) != 2 or not socket or not token_file or not agent:
        print("usage: podctl hook --socket SOCKET --token-file FILE --agent NAME CLI EVENT", file=sys.stderr)
        return 0
    state = os.path.dirname(socket)
    cli, cli_event = rest
    where = f"{agent} {cli} {cli_event}"
    previous = _arm_deadline(_env_ms("PODCTL_HOOK_DEADLINE_MS", DEFAULT_DEADLINE_MS), state, where)
    try:
        _hook(socket, token_file, agent, cli, cli_event)
    except _EXPECTED as exc:
        _log(state, f"{where}: {exc}")
    except BaseException as exc:  # noqa: BLE001 - a hook never breaks its CLI, whatever it is
        _log(state, f"{where}: unexpected {exc!r}")
    finally:
        _disarm_deadline(previous)
    return 0
