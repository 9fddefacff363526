"""The wire protocol between the broker and its clients (shim, hooks, CLI). Standard library only.

Frames are single-line JSON objects terminated by ``\\n`` on the pod's Unix socket.

Request::

    {"v": 1, "id": 7, "op": "tell", "agent": "writer", "token": "...", "args": {...}}

Response (same ``id``)::

    {"v": 1, "id": 7, "ok": true, "result": {...}}
    {"v": 1, "id": 7, "ok": false, "error": {"code": "unknown_agent", "message": "..."}}

Event (only on a connection that sent ``subscribe``)::

    {"v": 1, "event": "message" | "delivery" | "state" | "attention" | "tools" | "wake" | "usage" | "gap" | "site", "data": {...}}

``message`` is a stored message (below); ``delivery`` ``{to, ids, state, ts}`` says messages reached
``to``'s model (``injected``) or were ``read``; ``state`` ``{name, state, ts, starting}`` an agent's
busy/idle/stopped/blocked/failed (``starting``: its CLI was just started and is not up yet); ``attention``
``{name, state, blocked?, failed?, ts}`` why it is blocked or failed (as in ``status``), or that it no longer
is (neither); ``tools`` ``{name, ready, ts}`` its MCP tools came up or went away; ``wake`` ``{name, result,
ts}`` a wake nudge; ``usage`` ``{name, usage, over_budget, ts}`` an agent's tokens and cost so far, or its
budget state, changed; ``gap`` ``{skipped, after, ts}`` says the subscriber fell behind and that many events
were skipped (the messages among them are sent again). In a pod across machines (docs/sites.md) ``state``
and ``tools`` of an agent of another site carry its ``site`` and ``reported_at``, and ``site`` ``{site, link,
ts}`` says the bridge's link to the other sites went up or down, or ``{site, reported_at, ts}`` that another
site reported its members (every few seconds).

Every request names the agent it acts for and carries that agent's token; the broker
rejects a token that does not match the named agent (``auth``). The human is the member
``user``; requests marked *user only* below need the user's token.

Operations (``args`` -> ``result``):

- ``hello {}`` -> ``{pod, protocol, broker_pid}``
- ``tell {to, text, urgent=false, client_msg_id?}`` -> ``{message_id, status: "queued", recipients: [{name, state}]}``
  ``to`` is a name, a list of names, or ``"all"`` (every member but the sender).
- ``ask {to, text, client_msg_id?}`` -> ``{ask_id, message_id, status: "queued", recipients}``
  An ask to a route has the route's timeout: if answers are missing then, its asker gets an urgent
  ``notice`` with the answers that came and who did not answer (unless a tool already returned ``expired``).
- ``wait_for_reply {ask_id, timeout_ms}`` -> ``{ask_id, status: "replied" | "timeout" | "expired", replies, waiting_on}``
  Blocks in the broker at most ``timeout_ms`` (capped at ``MAX_WAIT_MS``).
- ``check_replies {ask_id}`` -> ``{ask_id, status: "replied" | "waiting", replies, waiting_on, delivery}``
  Replies that ``wait_for_reply`` or ``check_replies`` return are delivered: marked ``read`` for the
  caller, so no hook injects them afterwards.
- ``read_messages {since?, limit?}`` -> ``{messages, next, more}``: with ``since``, every message
  to the agent after that cursor; without it, the messages the agent has not seen yet (neither
  injected by a hook nor read). Returned messages are marked ``read``. A page holds at most
  ``limit`` messages and about 2 MiB of text; ``more`` is true whenever messages wait after it
  (read on from ``next``). An ask to the agent carries ``answered`` (whether it already replied to
  it), here and in hook injections.
- ``post_reply {ask_id, text, client_msg_id?}`` -> ``{message_id, ask_id, followup, to, note?, open_asks?}``.
  Only an asked agent may reply. Its first reply answers the ask; a later one is delivered to the asker
  as a follow-up (``followup: true``) and never changes what ``wait_for_reply`` returned: ``note`` says
  so and ``open_asks`` ``[{ask_id, from}]`` lists the asks to the agent still waiting for its answer.
  A reply to a rule's ask goes to the rule while it gathers the answers, later to the agent the rule
  asked for (``to``).
- ``list_agents {}`` -> ``{agents: [{name, cli, role, state, unread}], routes: [...]}``
- ``mcp {session, wait_cap_ms?}`` -> ``{mcp: true, session, wait_cap_ms}``: the relay of the agent's CLI
  (``podctl shim``) opens its MCP session; every later line on this connection is the CLI's MCP JSON-RPC,
  answered by the broker's seven tools (broker/mcp_tools.py). The agent's tools are up from then on.
- ``hook {event, inject=true, attention_only=false, shows=true, intro=false, facts?, hold_ms=0}`` -> ``{state, claim,
  messages, too_large, more, context?, open_asks?, request?}``. ``shows``: the hook puts what it is answered into the
  model's context (its output is not ``none``).
  ``event`` is one of ``HOOK_EVENTS``; it sets the agent's busy/idle state, or (``ATTENTION_EVENTS``, with the CLI
  event's ``facts``: ``tool_name``, ``tool_input``, ``message``, ``notification_type``, ``details``, ``error``,
  ``last_assistant_message``, ...) makes it ``blocked`` or ``failed``. A ``permission`` event returns ``request {id,
  decision}``: ``decision`` is set when podctl answers at once (an ``always``), else its hook waits with
  ``await_decision`` up to ``hold_ms``. With ``inject`` it claims the
  oldest messages not yet injected into the agent's model (with ``attention_only``, only asks, replies,
  urgent tells and the user's), at most ``HOOK_BATCH_COUNT`` and ``HOOK_BATCH_BYTES`` of text;
  ``too_large`` points (once) to messages too large to inject, and ``more`` counts those still waiting
  after this batch (read with ``read_messages``). The hook prints the batch and then sends
  ``ack_injected {claim}``.
  A claim not acknowledged within ``CLAIM_LEASE_S`` is offered again (a hook that dies loses nothing).
  ``session_start`` (and any event with ``intro``: a CLI whose session starts with its first prompt)
  also returns ``context: {pod, agent, role, members, routes}`` and, with ``shows``,
  ``open_asks``: asks to the agent still open that an earlier session was shown and did not answer
  (a message each; one too large to show has ``text: ""`` and ``too_large: bytes``). A session start
  wakes the agent only for what its new model has not seen: messages no model of it saw, and those asks.
- ``ack_injected {claim}`` -> ``{injected: n}``
- ``await_decision {request, timeout_ms, final=false}`` -> ``{decision, message?, by?}`` or ``{decision: null, settled?}``:
  a permission hook waits (at most ``MAX_WAIT_MS`` a call) for the answer to its request; ``settled`` says it ended
  without podctl's answer (answered in the pane). With ``final`` and no answer, the CLI's own dialog takes it.
- ``set_state {name, state}`` (user only) -> ``{name, state}``: the orchestrator reports a CLI it stopped, or
  one it just started (``idle``: its clock starts again, and it is ``starting`` until its tools or a hook show it up).
- ``history {since?, limit?}`` (user only) -> ``{messages, next, more}``, each message with its ``delivery``;
  paged like ``read_messages``.
- ``subscribe {since?}`` (user only) -> ``{subscribed: true}``, then events on this connection.
- ``status {}`` (user only) -> ``{pod, agents, routes, pending_deliveries, usage, budget}``; each agent
  ``{name, cli, role, state, state_ts, last_activity, unread, last_wake, last_wake_ts, handed_off_to, waking, tools_ready,
  usage, over_budget, leaving?, starting?, blocked?, failed?}``; ``blocked`` is ``{kind, tool, detail, since,
  answerable, request, source, how?, awaiting?}`` (``kind`` one of ``ATTENTION_KINDS``; ``how`` how a person answers
  when podctl cannot; ``awaiting`` the approver asked), ``failed`` ``{reason, since, source}`` (the CLI's own words);
  ``usage`` is ``{input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, requests, cost_usd (null if a
  model has no price), cost_usd_known_part, unpriced_models}`` (null before any), ``over_budget`` why the agent is no
  longer woken (null within budget); ``budget`` ``{budget_usd, budget_tokens_per_agent}``.
- ``usage_report {of, path, inode, offset, state, records: [{key, model, ts, input, cached, output, reasoning}]}``
  (user only; the supervisor) -> ``{added, refused}``: records read from agent ``of``'s session file ``path`` up to
  ``offset``, stored once per (agent, key) together with the file's position and reader ``state``; a record
  out of range (key over 256 or model over 128 characters, a count over 10^12) is refused alone (``refused``).
- ``usage_cursors {}`` (user only) -> ``{files: [{agent, path, inode, offset, state}]}``: where each file was read to.
- ``usage {since=0}`` (user only) -> ``{rows: [{agent, model, hour, input, cached, output, reasoning, requests}],
  pricing, limits, now}``: usage since ``since`` (epoch seconds) per agent, model and hour.
- ``asks {limit=50}`` (user only) -> ``{asks, now}``: asks still waiting for an answer, newest first, each
  ``{ask_id, from, ts, text (first 200 characters), target, route, mode, deadline, origin, targets: [{name, reply_id,
  replied_at}], waiting_on}``; an expired one is listed for 10 minutes after its deadline.
- ``sync {spec, source}`` (user only) -> ``{added, removed, changed}``: the desired state the applier just
  applied (the pod spec as JSON and its file); the broker never reads a pod file after it starts.
- ``prune {older_than_s?}`` (user only) -> ``{deleted}``.
- ``log {text, level="info"}`` (user only) -> ``{message_id}``: a line in the transcript (kind ``log``, from ``podctl``).
- ``handoff {from, to, reason?}`` (user only) -> ``{from, to, message_id}``: ``to`` takes over ``from``'s thread.
- ``rules {}`` (user only) -> ``{rules: [{name, on, agent, rounds, max_rounds, open_ask, last_fired, cooldown_s,
  ask, handoff}]}``.
- ``reset_rule {name}`` (user only) -> ``{name, rounds: 0}``: a rule that reached ``max_rounds`` may fire again.
- ``approve {name, always=false, request?}`` (user only) -> ``{name, request, decision, tool, detail, by}``: answer the
  agent's permission request (its oldest, or ``request``); ``always``: and never ask again for the same tool and detail.
  ``not_waiting`` when it waits for none (one already answered says by whom), ``cannot_answer`` when only its pane can.
- ``deny {name, reason="", request?}`` (user only) -> the same, ``decision: "deny"``; the model reads the reason.

A pod across machines (docs/sites.md): ``list_agents`` and ``status`` give every agent its ``site``, and an
agent of another site ``remote: true``, its state and ``unread`` as its site last reported them at
``reported_at``; ``status`` adds ``sites {here, link, sites: [{name, here, reported_at?, refused?}]}``. The
bridge (identity ``podctl.bridge``, token ``bridge.token``) may call only these, and nobody else may:

- ``bridge_pull {timeout_ms=10000, limit=500, report=false}`` -> ``{messages, receipts, state}``: what is due
  for the other sites (each item ``{id, site, msg_id, envelope}``, ``msg_id`` its JetStream ``Nats-Msg-Id``),
  and this site's ``state`` report when it changed (or ``report``); waits at most ``timeout_ms`` for something.
- ``bridge_sent {messages: [{id, site}], receipts: [{id, to, rank}], failed: [{id, site, why}]}`` -> ``{marked}``:
  JetStream acknowledged these publishes (``failed`` ones can never be published: their senders are told).
- ``bridge_receive {site, envelopes, attempts?}`` -> ``{results: [{result: "stored" | "duplicate" | "refused" |
  "later", id?, why?}]}``: envelopes that came on ``site``'s subjects, committed here (once per origin site and
  id) before the bridge acknowledges them; ``refused`` ones are dropped, ``later`` ones delivered again.
- ``bridge_link {up, detail}`` -> ``{link, site, pod}``: the bridge's link to NATS went up or down.

A message (in ``read_messages``, ``history``, events and hook injections)::

    {"id": 12, "ts": 1764020000.5, "from": "writer", "to": ["reviewer"], "kind": "ask",
     "text": "...", "ask_id": 12, "urgent": false, "followup": false, "target": "reviewer", "origin": null}

``kind`` is ``tell``, ``ask``, ``reply``, ``notice`` (non-delivery notices from ``podctl``) or ``log``
(a transcript line from ``podctl``). ``origin`` says what produced a message that was not its sender's
own doing: ``rule:<name>`` (an auto-ask rule and its log lines) or ``handoff``.
Delivery states per recipient: ``queued`` (committed), ``injected`` (a hook put it in the model's
context), ``read`` (returned by ``read_messages``).
"""

from __future__ import annotations

from . import codec

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from collections.abc import Iterator
    from typing import Any

# Standard library only, and not even `typing`, `json` or `socket` (codec.py has the C halves of
# the last two): every hook imports this module, and the hook path is fenced (hooks/path/).

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""The largest request the broker reads: a wire frame, or one MCP JSON-RPC line (a 1 MiB message
escaped as JSON fits). A longer one is refused (`too_large`; the relay answers its CLI -32600)."""
MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The largest answer or event frame a client reads (a page of history, about 2 MiB of text, fits
however it is escaped)."""
MAX_WAIT_MS = 10 * 60 * 1000
CLAIM_LEASE_S = 30.0
HOOK_BATCH_BYTES = 32 * 1024
"""At most this much message text (UTF-8 bytes) is injected by one hook; a larger message is never
injected (the agent is told it waits and reads it with read_messages)."""
HOOK_BATCH_COUNT = 20
"""At most this many messages are injected by one hook."""
SYSTEM_SENDER = "podctl"
"""Sender name of messages the broker writes itself (non-delivery notices)."""

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .calls import Calls
    from .records import AgentState, AttentionKind, Decision, EventName, HookEventName

HOOK_EVENTS: tuple[HookEventName, ...] = (
    "session_start", "turn_start", "tool_done", "turn_end", "session_end", "permission", "notification", "failure",
)
"""podctl's hook events. The first five set busy/idle/stopped; `permission` (the CLI asks to run a tool),
`notification` (the CLI tells its user something: what, the event's facts say) and `failure` (its turn
ended with an error) may make the agent `blocked` or `failed` (broker/attention.py)."""
BUSY_EVENTS: tuple[HookEventName, ...] = ("turn_start", "tool_done")
IDLE_EVENTS: tuple[HookEventName, ...] = ("session_start", "turn_end")
ATTENTION_EVENTS: tuple[HookEventName, ...] = ("permission", "notification", "failure")
AGENT_STATES: tuple[AgentState, ...] = ("busy", "idle", "stopped", "blocked", "failed")
"""`blocked`: waiting for a person (a permission, a question, a dialog); `failed`: cannot work (not
logged in, API errors): each with why (status's `blocked` / `failed`)."""
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("permission", "question", "dialog")
DECISIONS: tuple[Decision, ...] = ("allow", "always", "deny")
"""An answer to a permission request: allow once, allow and never ask again for the same tool and
detail (for this agent), or deny (with a reason the model reads)."""
MAX_FACTS_BYTES = 64 * 1024
"""The most of a hook event's facts (tool input, message) a hook sends the broker."""

# Error codes.
BAD_REQUEST = "bad_request"
PROTOCOL_MISMATCH = "protocol_version"
AUTH = "auth"
FORBIDDEN = "forbidden"
UNKNOWN_AGENT = "unknown_agent"
UNKNOWN_ASK = "unknown_ask"
NOT_ASKED = "not_asked"
EMPTY_TEXT = "empty_text"
TOO_LARGE = "too_large"
CONFLICT = "conflict"
BUSY = "busy"
INTERNAL = "internal"
NOT_WAITING = "not_waiting"
"""approve/deny of an agent that waits for no answer (or no longer: it was answered)."""
CANNOT_ANSWER = "cannot_answer"
"""approve/deny of a request podctl cannot answer (its CLI offers no way; podctl's wait ended): use the pane."""


class BrokerError(Exception):
    """The broker answered with an error result."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BrokerUnavailable(OSError):
    """The broker could not be reached (not running, socket gone, timed out)."""


def encode(frame: dict[str, Any]) -> bytes:
    return codec.dumps(frame).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A frame; ValueError says what is wrong with one that is not a JSON object of valid Unicode."""
    frame = loads(line)
    if not isinstance(frame, dict):
        raise ValueError("a frame must be a JSON object")
    return frame


def loads(line: bytes) -> Any:
    """JSON of valid Unicode; every fault (not UTF-8, not JSON, nested too deeply, a lone surrogate
    such as half of a split emoji, `\\ud83d`) is a ValueError that says which."""
    try:
        value = codec.loads(line.decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    if b"\\ud" in line or b"\\uD" in line:  # only an escape can carry a surrogate: check only then
        try:
            codec.dumps(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"a string holds a lone surrogate (\\u{ord(exc.object[exc.start]):04x}, half of a character such as"
                " a split emoji): it is not valid Unicode; send whole characters"
            ) from None
    return value


PARSE_ERROR = -32700
INVALID_REQUEST = -32600
"""JSON-RPC's codes for a line that is not JSON, and for one that is no valid message."""


def jsonrpc_problem(message: Any) -> tuple[int, Any, str] | None:
    """What makes a decoded line no MCP message, as (code, the id to answer with, why); None if
    nothing. MCP takes one object per line, `"jsonrpc": "2.0"`, a `method` string or a `result` /
    `error`, and an `id` that is a string or an integer (answered with id null when it is not)."""
    if isinstance(message, list):
        return INVALID_REQUEST, None, "JSON-RPC batches are not supported (MCP): send one message per line"
    if not isinstance(message, dict):
        return INVALID_REQUEST, None, "a JSON-RPC message is a JSON object"
    req_id = message.get("id")
    if "id" in message and (isinstance(req_id, bool) or not isinstance(req_id, (int, str))):
        return INVALID_REQUEST, None, "a JSON-RPC id is a string or an integer"
    if message.get("jsonrpc") != "2.0":
        return INVALID_REQUEST, req_id, 'a JSON-RPC message has "jsonrpc": "2.0"'
    if "method" in message:
        if not isinstance(message["method"], str):
            return INVALID_REQUEST, req_id, "a JSON-RPC method is a string"
    elif "id" not in message or not ("result" in message or "error" in message):
        return INVALID_REQUEST, req_id, "a JSON-RPC message is a request, a notification or a response"
    return None


def jsonrpc_error(req_id: Any, code: int, message: str) -> bytes:
    """A JSON-RPC error answer, as a line."""
    error = {"code": code, "message": message}
    return codec.dumps({"jsonrpc": "2.0", "id": req_id, "error": error}).encode("utf-8") + b"\n"


def request(req_id: int, op: str, agent: str, token: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": req_id, "op": op, "agent": agent, "token": token, "args": args}


def ok(req_id: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": req_id, "ok": True, "result": result}


def error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": req_id, "ok": False, "error": {"code": code, "message": message}}


def event(name: EventName, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "event": name, "data": data}


def unwrap(frame: dict[str, Any]) -> dict[str, Any]:
    """The result of a response frame, or raise the BrokerError it carries."""
    if frame.get("ok"):
        return frame.get("result") or {}
    err = frame.get("error") or {}
    raise BrokerError(str(err.get("code", INTERNAL)), str(err.get("message", "unknown error")))


class Client:
    """A blocking client for short-lived callers (hooks, CLI commands).

    Every call has a timeout; an unreachable broker raises BrokerUnavailable quickly.
    """

    def __init__(self, socket_path: str | os.PathLike[str], agent: str, token: str, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.agent = agent
        self.token = token
        self.timeout = timeout
        self._sock: codec.Socket | None = None
        self._buf = b""
        self._next_id = 0

    def _connect(self) -> codec.Socket:
        """Connect within the client's timeout. A Unix socket whose backlog is full answers EAGAIN at
        once (it does not wait like TCP): that is a busy moment of the broker, so try again."""
        if self._sock is None:
            deadline = 0.0
            while True:
                sock = codec.unix_socket()
                sock.settimeout(self.timeout)
                try:
                    sock.connect(str(self.socket_path))
                    break
                except BlockingIOError as exc:
                    sock.close()
                    import time

                    deadline = deadline or time.monotonic() + self.timeout
                    if time.monotonic() >= deadline:
                        raise BrokerUnavailable(f"the broker at {self.socket_path} is too busy to accept: {exc}") from exc
                    time.sleep(0.005)
                except OSError as exc:
                    sock.close()
                    raise BrokerUnavailable(f"cannot reach the broker at {self.socket_path}: {exc}") from exc
            self._sock = sock
        return self._sock

    def _call(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        sock = self._connect()
        self._next_id += 1
        req_id = self._next_id
        sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            sock.sendall(encode(request(req_id, op, self.agent, self.token, args)))
            while True:
                frame = decode(self._read_line(sock))
                if frame.get("id") == req_id:
                    return unwrap(frame)
        except (OSError, ValueError) as exc:
            self.close()
            raise BrokerUnavailable(f"broker at {self.socket_path} did not answer {op}: {exc}") from exc

    if TYPE_CHECKING:
        call: Calls
        """`call(op, timeout=None, **args)`: the operation's result (typed per operation: calls.Calls),
        or raise the BrokerError it answered; BrokerUnavailable if the broker does not answer."""
    else:
        call = _call

    call_untyped = _call
    """`call` for an operation named at run time (a test helper, a loop over operations): untyped."""

    def events(self, since: int = 0) -> Iterator[dict[str, Any]]:
        """Subscribe (user only) and yield event frames as they come; blocks between events."""
        self.call("subscribe", since=since)
        sock = self._connect()
        sock.settimeout(None)
        try:
            while True:
                frame = decode(self._read_line(sock))
                if "event" in frame:
                    yield frame
        except (OSError, ValueError) as exc:
            self.close()
            raise BrokerUnavailable(f"lost the broker at {self.socket_path}: {exc}") from exc

    def _read_line(self, sock: codec.Socket) -> bytes:
        while b"\n" not in self._buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("broker closed the connection")
            self._buf += chunk
            if len(self._buf) > MAX_ANSWER_BYTES:
                raise ValueError(f"an answer over {MAX_ANSWER_BYTES} bytes")
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buf = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
