"""A hook run: report busy/idle to the broker and inject new messages. Standard library only.

    python -I -S hooks/fast.py --socket SOCK --token-file FILE --agent NAME \
        --event EVENT --output OUTPUT [--attention-only] [--no-inject] [--intro] [--hold-ms N]

`--event` is podctl's event (`wire.HOOK_EVENTS`; omitted: nothing to report) and `--output` the
shape of the answer (`render.OUTPUTS`), both chosen by the CLI's adapter for each native event;
`--intro` adds the session's introduction (role, team, tools) to the answer whatever the event.
The events that may need a person (`wire.ATTENTION_EVENTS`) send the broker the facts of the CLI's
event (tool, its input, the message: `facts`, bounded). A `permission` hook with `--hold-ms` then
waits up to that long for an answer (`podctl approve`/`deny`, an approver, a policy) and prints it
in the CLI's shape; with none by then it prints nothing, and the CLI shows its own dialog.

It never breaks its CLI: whatever goes wrong (no broker, a slow or trickling broker, stdin never
closed, bad or huge input), it exits 0 within one total deadline with nothing injected. Messages
are claimed, printed, then acknowledged: a hook that dies before printing leaves them to be
offered again.
"""

from __future__ import annotations

import posix as os  # `os` itself costs a millisecond more (stat, posixpath, abc): a hook counts them
import sys

from podctl.broker import codec, wire

from .render import render, render_decision
from .text import injection

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from podctl.broker.records import DecisionAnswer, Permission

DEFAULT_TIMEOUT_MS = 90
"""Per broker call (PODCTL_HOOK_TIMEOUT_MS): how long one request may wait for its answer."""
DEFAULT_DEADLINE_MS = 2000
"""The whole hook (PODCTL_HOOK_DEADLINE_MS): read stdin, reach the broker, print, acknowledge."""
MAX_STDIN_BYTES = 4 * 1024 * 1024
"""Read no more of stdin than this: no CLI sends that much to a hook."""

HOLD_CALL_MS = 20_000
"""A held hook asks the broker for its answer in calls of at most this long."""
HOLD_MARGIN_MS = 400
"""A held hook gives up this long before its hold ends, so it can say so and exit in time."""
FACT_KEYS = (
    "tool_name", "tool_input", "message", "title", "notification_type", "details", "error", "error_details",
    "last_assistant_message", "prompt_response", "errorContext",
)
"""What a hook passes on of its CLI's event (the names Claude Code gave them; the other CLIs' adapters
and plugins use the same, but for Copilot CLI's `errorContext`: whose error it was)."""

_EXPECTED = (wire.BrokerUnavailable, wire.BrokerError, OSError, ValueError)
VALUED = ("--state", "--agent", "--socket", "--token-file", "--event", "--output", "--hold-ms")
FLAGS = ("--attention-only", "--no-inject", "--intro")


def _parse(argv: list[str]) -> dict[str, str] | None:
    """The options, or None when the command line is not one podctl writes."""
    opts: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if arg in VALUED:
            opts[arg[2:]] = next(it, "")
        elif arg in FLAGS:
            opts[arg[2:]] = "1"
        else:
            return None
    return opts


def _env_ms(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name.encode()) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def _read_stdin() -> bytes:
    """All of stdin (the CLI's event, which podctl does not need: it is read so the CLI's write
    never fails), or b"" when it is a terminal, closed, or over MAX_STDIN_BYTES.

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


def facts(data: bytes) -> dict[str, Any]:
    """The event's facts the broker needs (`FACT_KEYS`), each at most an eighth of
    `wire.MAX_FACTS_BYTES` as JSON (a longer value is cut, as text); {} when the event is no JSON object."""
    try:
        event = wire.loads(data) if data else None
    except ValueError:
        return {}
    if not isinstance(event, dict):
        return {}
    limit = wire.MAX_FACTS_BYTES // 8
    out: dict[str, Any] = {}
    for key in FACT_KEYS:
        value = event.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = value[:limit]
            continue
        text = codec.dumps(value)
        out[key] = value if len(text) <= limit else text[:limit]
    return out


def _log(state: str | None, text: str) -> None:
    if not state:
        return
    import time

    try:
        from podctl.pods import layout  # here: a hook that goes well never writes its log

        with open(layout.hooks_log_of(state), "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass


def _arm_deadline(deadline_ms: int, state: str, where: str) -> object:
    """Exit 0 when `deadline_ms` has passed, wherever the hook is (a blocked read, recv or write is
    interrupted by SIGALRM). `_signal` rather than `signal`, which imports `enum`. Returns the
    previous SIGALRM handler for `_disarm_deadline`, or None when no alarm could be set (not the
    main thread: then only the per-call timeouts bound the hook)."""
    import _signal  # type: ignore[import-not-found]

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


def _hook(socket: str, token_file: str, agent: str, opts: dict[str, str], started: float) -> None:
    """One hook run: drain the CLI's event, tell the broker, print what to inject (or the answer to a
    permission request), acknowledge it."""
    data = _read_stdin()
    output = opts.get("output") or "none"
    event = opts.get("event")
    if not event:
        return
    timeout = _env_ms("PODCTL_HOOK_TIMEOUT_MS", DEFAULT_TIMEOUT_MS) / 1000.0
    with open(token_file, encoding="utf-8") as fh:
        token = fh.read().strip()
    inject = "no-inject" not in opts and output != "none" and not output.startswith("decision")
    args: dict[str, Any] = {"event": event, "inject": inject, "attention_only": "attention-only" in opts,
                            "shows": output != "none", "intro": "intro" in opts}
    if event in wire.ATTENTION_EVENTS:
        args["facts"] = facts(data)
    elif event == "tool_done" and data:
        ran = facts(data)  # which tool ran: it may be the one a permission request waits for
        args["facts"] = {key: ran[key] for key in ("tool_name", "tool_input") if key in ran}
    hold_ms = _int(opts.get("hold-ms"))
    if event == "permission":
        args["hold_ms"] = hold_ms
    with wire.Client(socket, agent, token, timeout=timeout) as client:
        response = client.call("hook", **args)
        request = response.get("request")
        if isinstance(request, dict) and output.startswith("decision"):
            answer = request if request.get("decision") else _await(client, request, started + hold_ms / 1000.0)
            _write(render_decision(output, answer))
            return
        _write(render(output, injection(response)))
        if response.get("claim"):
            client.call("ack_injected", claim=response["claim"])


def _await(client: wire.Client, request: Permission, until: float) -> DecisionAnswer:
    """The answer to a permission request, waited for until `until` (monotonic); {} if none came.
    The last call says it is the last, so the broker knows the CLI's own dialog answers from then on."""
    import time

    while True:
        left_ms = int((until - time.monotonic()) * 1000) - HOLD_MARGIN_MS
        if left_ms <= 0:
            return {}
        wait_ms = min(left_ms, HOLD_CALL_MS)
        answer = client.call("await_decision", timeout=wait_ms / 1000.0 + 2.0, request=request["id"],
                             timeout_ms=wait_ms, final=wait_ms == left_ms)
        if answer.get("decision") or answer.get("settled"):
            return answer


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _write(out: str) -> None:
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    """Always 0: a hook never breaks its CLI. (`--state POD_DIR` stands for the pod folder's socket
    and the agent's token in it.)"""
    opts = _parse(argv)
    agent = (opts or {}).get("agent")
    state_dir = (opts or {}).get("state")
    socket, token_file = (opts or {}).get("socket"), (opts or {}).get("token-file")
    if state_dir and not (socket and token_file):  # here: the adapters name both (a hook counts its imports)
        from podctl.pods import layout

        socket = socket or layout.socket_of(state_dir)
        token_file = token_file or (layout.token_of(state_dir, agent) if agent else None)
    if opts is None or not socket or not token_file or not agent:
        print("usage: fast.py --socket SOCKET --token-file FILE --agent NAME --event EVENT --output OUTPUT"
              " [--attention-only] [--no-inject] [--intro] [--hold-ms N]", file=sys.stderr)
        return 0
    import time

    started = time.monotonic()
    state = socket.rsplit("/", 1)[0]
    where = f"{agent} {opts.get('event') or '-'}"
    deadline = _env_ms("PODCTL_HOOK_DEADLINE_MS", DEFAULT_DEADLINE_MS) + _int(opts.get("hold-ms"))
    previous = _arm_deadline(deadline, state, where)
    try:
        _hook(socket, token_file, agent, opts, started)
    except _EXPECTED as exc:
        _log(state, f"{where}: {exc}")
    except BaseException as exc:  # noqa: BLE001 - a hook never breaks its CLI, whatever it is
        _log(state, f"{where}: unexpected {exc!r}")
    finally:
        _disarm_deadline(previous)
    return 0
