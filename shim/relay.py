"""`podctl shim`: carries an agent CLI's MCP session (its stdio) to the pod's broker, which serves
the seven tools itself (broker/mcp_tools.py). Standard library only, like the hook path.

    python -I -S shim/fast.py --pod POD --agent NAME --socket SOCK --token-file FILE

It never blocks or breaks its CLI:
- it connects, authenticates as its agent (`mcp {session}`) and then moves JSON-RPC lines both
  ways; the broker learns on every (re)connection that the agent's tools are up;
- when the broker restarts it reconnects, replays the session's `initialize` and `initialized`
  (the broker's answer to the replayed `initialize` is swallowed) and sends again every request
  that had no answer, and those that came meanwhile (for up to `HOLD_S`); the broker stores a
  re-sent write once (its client_msg_id is the session id and the request id) and a re-sent
  `wait_for_reply` simply waits again;
- while the broker is unreachable it answers `initialize`, `ping` and `tools/list` from its
  built-in copy (builtin.json, checked against the broker by a test) and every tool call with a
  clear tool error saying how to bring the pod up; a call that was in flight when the broker went
  away gets the same answer at the same deadline; a broker that refuses the relay's token is
  reported as that (whose token, what to do), not as a broker that is down;
- it never dies of what its CLI writes: a line that is not JSON, a batch, an id that is no string
  or integer, a line over `wire.MAX_REQUEST_BYTES` get JSON-RPC errors (-32700, -32600; id null
  when unknown), and no line's tail is ever taken for a message of its own.
"""

from __future__ import annotations

import os
import sys
import time

from podctl.broker import codec, wire
from podctl.pods import layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HERE = __file__.rsplit("/", 1)[0]
RECONNECT_S = (0.05, 2.0)
"""First and longest pause between attempts to reach the broker."""
TOKEN_ENV = "PODCTL_TOKEN"
INTERNAL_ERROR = -32603
HOLD_S = 30.0
"""How long a request waits for a restarting broker before the CLI is told it is down (below the
CLIs' own tool timeout of about 60 s; `PODCTL_HOLD_MS` sets another)."""
CHUNK = 65536
MAX_LINE = wire.MAX_REQUEST_BYTES


class Relay:
    def __init__(
        self, pod: str, agent: str, socket_path: str, token: str, wait_cap_ms: int | None, *, token_source: str = "",
        hold_s: float = HOLD_S,
    ) -> None:
        self.pod = pod
        self.agent = agent
        self.socket_path = socket_path
        self.token = token
        self.token_source = token_source
        """Where the token came from (PODCTL_TOKEN, or a file, read again after a refusal)."""
        self.refused: str | None = None
        """Why the broker refused the token at the last attempt."""
        self.wait_cap_ms = wait_cap_ms
        self.hold_s = hold_s
        self.session = os.urandom(8).hex()
        self.sock: codec.Socket | None = None
        self.initialize: bytes | None = None
        self.initialize_id: Any = None
        self.initialized: bytes | None = None
        self.pending: dict[str, bytes] = {}
        """Requests sent to the broker (or held for it) and not answered yet, by their JSON id."""
        self.held: dict[str, tuple[float, dict[str, Any]]] = {}
        """Requests that came while a broker we had was restarting: (deadline, request)."""
        self.ever_connected = False
        self.swallow: set[str] = set()
        self.next_try = 0.0
        self.pause = RECONNECT_S[0]
        self.builtin: dict[str, Any] | None = None
        self.cli_buf = bytearray()
        self.skipping = False
        """The rest of a line over MAX_LINE is being read and dropped (it was answered once)."""
        self.broker_buf = b""

    # -- the broker side ----------------------------------------------------------------------------

    def connect(self) -> bool:
        """Reach the broker and open the MCP session; replay what a new session needs."""
        if time.monotonic() < self.next_try:
            return False
        sock = codec.unix_socket()
        sock.settimeout(5.0)
        try:
            sock.connect(self.socket_path)
            args: dict[str, Any] = {"session": self.session}
            if self.wait_cap_ms:
                args["wait_cap_ms"] = self.wait_cap_ms
            sock.sendall(wire.encode(wire.request(0, "mcp", self.agent, self.token, args)))
            answer = _read_line(sock)
            wire.unwrap(wire.decode(answer))
        except (OSError, ValueError, wire.BrokerError) as exc:
            sock.close()
            self._refused(exc.message if isinstance(exc, wire.BrokerError) and exc.code == wire.AUTH else None)
            self.next_try = time.monotonic() + self.pause
            self.pause = min(self.pause * 2, RECONNECT_S[1])
            return False
        sock.settimeout(None)
        self.refused = None
        self.sock, self.pause, self.ever_connected = sock, RECONNECT_S[0], True
        self.held.clear()
        if self.initialize is not None and _key(self.initialize_id) not in self.pending:
            self.swallow.add(_key(self.initialize_id))
            self._to_broker(self.initialize)
            if self.initialized is not None:
                self._to_broker(self.initialized)
        for line in list(self.pending.values()):
            self._to_broker(line)
        return True

    def _to_broker(self, line: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendall(line)
        except OSError:
            self.drop()

    def _refused(self, why: str | None) -> None:
        """Note a refusal of the token (None: the attempt failed otherwise); a token from a file is
        read again for the next attempt (the pod may have been made anew)."""
        self.refused = why
        if why is not None and self.token_source and self.token_source != TOKEN_ENV:
            try:
                with open(self.token_source, encoding="utf-8") as fh:
                    self.token = fh.read().strip()
            except OSError:
                pass

    def drop(self) -> None:
        """The broker went away: the calls it had not answered wait for it like new ones, until
        `hold_s` from now."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.next_try = time.monotonic()
            deadline = time.monotonic() + self.hold_s
            for key, line in self.pending.items():
                request = _parse(line)
                if key not in self.held and isinstance(request, dict):
                    self.held[key] = (deadline, request)

    def from_broker(self, line: bytes) -> None:
        """An answer (or a notification) of the broker, for the CLI."""
        message = _parse(line)
        key = _key(message.get("id")) if isinstance(message, dict) and "id" in message else None
        if key is not None and ("result" in message or "error" in message):
            self.pending.pop(key, None)
            if key in self.swallow:
                self.swallow.discard(key)
                return
        _write(line)

    # -- the CLI side --------------------------------------------------------------------------------

    def from_cli(self, line: bytes) -> None:
        """One line of the CLI; one that is no MCP message is answered here, never sent on."""
        try:
            message = codec.loads(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            _write(wire.jsonrpc_error(None, wire.PARSE_ERROR, f"Parse error: {why}"))
            return
        problem = wire.jsonrpc_problem(message)
        if problem is not None:
            code, req_id, why = problem
            _write(wire.jsonrpc_error(req_id, code, f"Invalid request: {why}"))
            return
        method = message.get("method")
        request = "id" in message and bool(method)
        if self.sock is None:
            self.connect()  # replays what the session had before this line
        if method == "initialize":
            self.initialize, self.initialize_id = line, message.get("id")
        elif method == "notifications/initialized":
            self.initialized = line
        if self.sock is None:
            if request and self.ever_connected:
                self.pending[_key(message["id"])] = line  # sent once the broker is back
                self.held[_key(message["id"])] = (time.monotonic() + self.hold_s, message)
            elif request:
                self.answer_alone(message)
            return
        if request:
            self.pending[_key(message["id"])] = line
        self._to_broker(line)

    def answer_alone(self, request: dict[str, Any]) -> None:
        """What the CLI gets while the broker is unreachable: the broker's own answers from the
        built-in copy (in the era of the protocol the request speaks), and for a tool call a clear
        tool error saying what is wrong and what to do."""
        builtin = self.builtin_copy()
        method, req_id = request.get("method"), request.get("id")
        raw_params = request.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        raw_meta = params.get("_meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        era = builtin["modern"] if builtin["envelope_key"] in meta else builtin["legacy"]
        template = era.get(method)
        if template is None:
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": req_id, "error": {
                "code": -32601, "message": f"{method} is not available while the pod's broker is down"}}
            _write(codec.dumps(reply).encode("utf-8") + b"\n")
            return
        result = codec.loads(codec.dumps(template))
        if "instructions" in result:
            result["instructions"] = result["instructions"].replace("{pod}", self.pod).replace("{agent}", self.agent)
        if method == "initialize":
            wanted = params.get("protocolVersion")
            versions = builtin["handshake_versions"]
            result["protocolVersion"] = wanted if wanted in versions else versions[-1]
        if method == "tools/call":
            result["content"][0]["text"] = codec.dumps({"error": self._why_alone()})
        _write(codec.dumps({"jsonrpc": "2.0", "id": req_id, "result": result}).encode("utf-8") + b"\n")

    def _why_alone(self) -> dict[str, str]:
        """Why a tool call cannot reach the broker, and what to do."""
        if self.refused is not None:
            return {"code": wire.AUTH, "message": (
                f"the broker of pod {self.pod} refused the token this relay holds for agent {self.agent} (from"
                f" {self.token_source}): {self.refused}. Check that {TOKEN_ENV} does not hold another agent's or"
                f" pod's token (a --token-file given on the command line wins over it), or restart the agent:"
                f" `podctl restart {self.pod} {self.agent}`"
            )}
        return {"code": "broker_unavailable", "message": (
            f"the broker of pod {self.pod} is not running: start the pod with `podctl resume {self.pod}`"
            " (or `podctl up POD_FILE`), then call again"
        )}

    def expire_held(self) -> None:
        """Requests that waited `hold_s` for the broker get the answers of a broker that is down."""
        now = time.monotonic()
        for key, (deadline, request) in list(self.held.items()):
            if now >= deadline:
                del self.held[key]
                self.pending.pop(key, None)
                self.answer_alone(request)

    def builtin_copy(self) -> dict[str, Any]:
        if self.builtin is None:
            with open(HERE + "/builtin.json", encoding="utf-8") as fh:
                self.builtin = codec.loads(fh.read())
        return self.builtin

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> int:
        """Move lines until the CLI closes its side (it exited)."""
        import select

        self.connect()
        self.broker_buf = b""
        while True:
            watched = [0] if self.sock is None else [0, self.sock.fileno()]
            ready, _, _ = select.select(watched, [], [], self._timeout())
            if self.sock is None and not ready:
                if not self.connect():  # once back, the broker learns the tools are up; held calls go again
                    self.expire_held()
                continue
            if 0 in ready and not self._read_cli():
                return 0
            if self.sock is not None and self.sock.fileno() in ready:
                self._read_broker()

    def _timeout(self) -> float | None:
        """Block while connected; else wake up for the next attempt or the first held call's deadline."""
        if self.sock is not None:
            return None
        wake_at = min([self.next_try, *(deadline for deadline, _ in self.held.values())])
        return max(0.0, wake_at - time.monotonic())

    def _read_cli(self) -> bool:
        """Read what the CLI wrote and handle each whole line. A line over MAX_LINE is answered
        once (-32600, id null) and dropped to its end: its tail is never read as a message."""
        chunk = os.read(0, CHUNK)
        if not chunk:
            return False
        start = len(self.cli_buf)
        self.cli_buf += chunk
        end = self.cli_buf.find(b"\n", start)
        while end >= 0:
            line = bytes(self.cli_buf[:end + 1])
            del self.cli_buf[:end + 1]
            if self.skipping:
                self.skipping = False
            elif line.strip():
                self._line_from_cli(line)
            end = self.cli_buf.find(b"\n")
        if len(self.cli_buf) > MAX_LINE:
            if not self.skipping:
                _write(wire.jsonrpc_error(None, wire.INVALID_REQUEST, (
                    f"Invalid request: a line over {MAX_LINE} bytes; it is dropped (point to a file rather than"
                    " pasting it)"
                )))
            self.skipping = True
            self.cli_buf.clear()
        return True

    def _line_from_cli(self, line: bytes) -> None:
        """Handle one line; whatever it holds, the relay lives on (a fault of ours is answered and logged)."""
        try:
            self.from_cli(line)
        except Exception as exc:  # noqa: BLE001 - the relay must outlive any input: the CLI keeps its tools
            print(f"podctl shim: a line from the CLI failed: {exc!r}", file=sys.stderr)
            _write(wire.jsonrpc_error(None, INTERNAL_ERROR, f"Internal error of the podctl relay: {exc}"))

    def _read_broker(self) -> None:
        assert self.sock is not None
        try:
            chunk = self.sock.recv(CHUNK)
        except OSError:
            chunk = b""
        if not chunk:
            self.drop()
            self.broker_buf = b""
            return
        self.broker_buf += chunk
        while b"\n" in self.broker_buf:
            line, self.broker_buf = self.broker_buf.split(b"\n", 1)
            self.from_broker(line + b"\n")


def _key(req_id: Any) -> str:
    return codec.dumps(req_id)


def _parse(line: bytes) -> Any:
    try:
        return codec.loads(line.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None


def _write(data: bytes) -> None:
    while data:
        written = os.write(1, data)
        data = data[written:]


def _read_line(sock: codec.Socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise OSError("the broker closed the connection")
        data += chunk
    return data


HELP = """usage: podctl shim --pod POD --agent NAME [--socket SOCKET] [--token-file FILE] [--state FOLDER]
                   [--wait-cap-ms N]

The MCP server an agent's CLI runs (its adapter writes this command into the CLI's config): it relays
the CLI's MCP session on stdin/stdout to the pod's broker, which serves the seven tools.

  --pod POD           the pod
  --agent NAME        the agent it acts for
  --socket SOCKET     the broker's socket (default: FOLDER/{socket})
  --token-file FILE   the agent's token (default: FOLDER/{token}; it wins over PODCTL_TOKEN)
  --state FOLDER      the pod's state folder, for the two defaults above
  --wait-cap-ms N     the longest one wait_for_reply call blocks (default: PODCTL_WAIT_CAP_MS, else the
                      pod's limits.wait_cap_ms; the smaller of this and the pod's limit applies)
  -h, --help          this help

Environment: PODCTL_TOKEN (the token when no --token-file is given), PODCTL_WAIT_CAP_MS,
PODCTL_HOLD_MS (how long a call waits for a restarting broker, default 30000).""".format(
    socket=layout.SOCKET, token=layout.token_of("", "NAME").lstrip("/"),
)


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(HELP)
        return 0
    opts: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if arg.startswith("--") and arg[2:] in ("pod", "agent", "socket", "token-file", "state", "wait-cap-ms"):
            opts[arg[2:]] = next(it, "")
        else:
            print(f"podctl shim: unknown argument {arg!r}", file=sys.stderr)
            return 2
    pod, agent = opts.get("pod"), opts.get("agent")
    state = opts.get("state")
    socket_path = opts.get("socket") or (layout.socket_of(state) if state else None)
    token_file = opts.get("token-file") or (layout.token_of(state, agent) if state and agent else None)
    if not pod or not agent or not socket_path or not token_file:
        print("usage: podctl shim --pod POD --agent NAME --socket SOCKET --token-file FILE", file=sys.stderr)
        return 2
    # An explicit --token-file wins; PODCTL_TOKEN stands in for the file only when none is given.
    token, source = (None, token_file) if opts.get("token-file") else (os.environ.get(TOKEN_ENV), TOKEN_ENV)
    if not token:
        source = token_file
        try:
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError:
            print(f"podctl shim: no token for agent {agent!r} at {token_file}: is it an agent of pod {pod!r}?"
                  " Bring the pod up with `podctl up` first.", file=sys.stderr)
            return 2
    cap = opts.get("wait-cap-ms") or os.environ.get("PODCTL_WAIT_CAP_MS") or ""
    hold = os.environ.get("PODCTL_HOLD_MS") or ""
    relay = Relay(pod, agent, socket_path, token, int(cap) if cap.isdigit() else None, token_source=source,
                  hold_s=int(hold) / 1000 if hold.isdigit() else HOLD_S)
    try:
        return relay.run()
    except KeyboardInterrupt:
        return 0
