"""The script agent: a deterministic stand-in for a model CLI, for demos, CI and dry runs.

Like a real CLI it talks to the pod only through its MCP server (`podctl shim`, spoken to as
JSON-RPC lines on its stdio, as a CLI does) and runs its adapter's hook commands at the moments a
CLI would: session start, turn start, after each tool call, turn end. Its first turn plays the
script's steps; every line on its standard input (the wake nudge) starts another turn in which it
reads its inbox and answers the asks with the script's reply template.

Standard library only, like the relay it speaks to (`python -I -S scriptagent/fast.py`): a pod of
ten script agents costs ten small interpreters, not ten copies of an MCP SDK. It does one thing at
a time, as a CLI's turn does, so it needs no event loop: every wait has its deadline.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from podctl.broker.transcript import visible
from podctl.pods.script import USAGE_COUNTS, USAGE_FILE, WAIT_FOR_S, Script, ScriptError, Step, load_script

HOOK_TIMEOUT_S = 10.0
TOOL_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0
"""How long the MCP server may take to answer `initialize` and `tools/list`."""
CLOSE_S = 5.0
PROTOCOL_VERSION = "2025-06-18"
"""The MCP handshake version the agent asks for (the relay and the broker speak it)."""


def show(text: str) -> None:
    """Print a line to the agent's pane; message text in it cannot drive the terminal (`visible`)."""
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} {visible(text, multiline=True)}", flush=True)


class ToolFailed(RuntimeError):
    pass


class Stopped(Exception):
    """SIGTERM or SIGHUP: the agent ends at once (its MCP server is closed on the way out)."""


class McpClient:
    """An MCP client over a server's stdio: one request at a time, each with its deadline."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._buf = b""
        self._next_id = 0

    def start(self) -> list[str]:
        """The handshake; returns the names of the server's tools."""
        self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "podctl-script-agent", "version": "1"},
        }, START_TIMEOUT_S)
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        listed = self.request("tools/list", {}, START_TIMEOUT_S)
        return sorted(str(t.get("name")) for t in listed.get("tools", []))

    def call_tool(self, name: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": args}, timeout)

    def request(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and return its result; TimeoutError past `timeout`, OSError if the server
        went away, ToolFailed for a JSON-RPC error."""
        self._next_id += 1
        req_id = self._next_id
        self._send({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") != req_id or "method" in message:
                continue  # a notification, or an answer to a request given up on
            if "error" in message:
                error = message["error"] if isinstance(message["error"], dict) else {}
                raise ToolFailed(f"{method}: {error.get('message', message['error'])}")
            result = message.get("result")
            return result if isinstance(result, dict) else {}

    def _send(self, message: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise OSError(f"the MCP server is gone: {exc}") from None

    def _read_message(self, deadline: float) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the MCP server did not answer in time")
            ready, _, _ = select.select([stdout.fileno()], [], [], left)
            if ready:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise OSError("the MCP server closed its output")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            return {}
        return message if isinstance(message, dict) else {}

    def close(self) -> None:
        """Close the server's input (it exits), then make sure it is gone."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=CLOSE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=CLOSE_S)


class ScriptAgent:
    def __init__(self, config: dict[str, Any], script: Script) -> None:
        self.config = config
        self.script = script
        self.agent = config["agent"]
        self.workdir = Path(config["workdir"])
        self.client: McpClient | None = None
        self.turns = 0

    def tool(self, name: str, **args: Any) -> dict[str, Any]:
        assert self.client is not None
        result = self.client.call_tool(name, args, TOOL_TIMEOUT_S)
        content = result.get("content") or [{}]
        first = content[0] if isinstance(content[0], dict) else {}
        data: dict[str, Any] = json.loads(first.get("text") or "{}") if first.get("type") == "text" else {}
        if result.get("isError"):
            raise ToolFailed(data.get("error", {}).get("message", str(data)))
        return data

    def hook(self, event: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one of its hooks as a CLI does (the event's facts on stdin); what it answered, as JSON."""
        argv = self.config["hooks"][event]
        payload = json.dumps({"event": event, "agent": self.agent, "cwd": str(self.workdir), **(facts or {})}).encode()
        timeout = float(self.config.get("hold_timeout_s") or HOOK_TIMEOUT_S) if event == "Permission" else HOOK_TIMEOUT_S
        try:
            out = subprocess.run(argv, input=payload, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=timeout, check=False).stdout
        except subprocess.TimeoutExpired:
            show(f"! hook {event} timed out")
            return {}
        try:
            answer = json.loads(out) if out.strip() else {}
        except ValueError:
            return {}
        if not isinstance(answer, dict):
            return {}
        context = answer.get("additionalContext") if event != "Permission" else None
        if context:
            show(f"⇢ injected at {event}:")
            for line in str(context).split("\n"):
                print(f"    {visible(line, multiline=True)}", flush=True)
        return answer

    def ask_permission(self, tool: str, detail: str) -> bool:
        """A `permission` step: ask to run `tool` as a CLI does and wait for the answer (podctl's,
        an approver's, an `always`); under `permissions: full` nothing asks."""
        if self.config.get("permissions") == "full":
            show(f"✓ {tool} {detail}: allowed (permissions: full)")
            return True
        show(f"? may I run {tool} {detail}")
        answer = self.hook("Permission", {"tool_name": tool, "tool_input": {"command": detail}})
        if answer.get("decision") in ("allow", "always"):
            show(f"✓ {tool} {detail}: allowed")
            return True
        show(f"✗ {tool} {detail}: {answer.get('message') or 'no answer: not run'}")
        return False

    def run_step(self, step: Step) -> str | None:
        """One step; "skip" when the next one must not run (a permission refused), "stop" when the
        turn ends here (a `fail`)."""
        args = step.args
        if step.kind == "permission":
            return None if self.ask_permission(str(args["tool"]), str(args["detail"])) else "skip"
        if step.kind == "fail":
            show(f"! {args['text']}")
            self.hook("Failure", {"error": "unknown", "last_assistant_message": str(args["text"])})
            return "stop"
        if step.kind == "sleep":
            time.sleep(args["seconds"])
            return None
        if step.kind == "say":
            show(args["text"])
            return None
        if step.kind == "wait_for":
            self.wait_for(self.workdir / args["path"])
            return None
        if step.kind == "usage":
            self.record_usage(args)
            return None
        if step.kind == "write":
            path = (self.workdir / args["path"]).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(args["text"]), encoding="utf-8")
            show(f"✎ wrote {args['path']}")
        elif step.kind == "tell":
            sent = self.tool("tell", to=args["to"], text=str(args["text"]), urgent=bool(args.get("urgent", False)))
            show(f"→ tell {args['to']}: {args['text']}  (#{sent['message_id']})")
        elif step.kind == "ask":
            asked = self.tool("ask", to=args["to"], text=str(args["text"]))
            show(f"? ask {args['to']} #{asked['ask_id']}: {args['text']}")
            self.wait_reply(asked["ask_id"], float(args.get("timeout", 120)))
        self.hook("AfterTool")
        return None

    def record_usage(self, args: dict[str, Any]) -> None:
        """Append one model request's tokens to this agent's usage file, as a CLI appends to its session file."""
        counts = {name: int(args.get(name, 0)) for name in USAGE_COUNTS}
        record = {"type": "usage", "id": os.urandom(16).hex(), "ts": time.time(), "model": str(args["model"]), **counts}
        with (Path(self.config["agent_dir"]) / USAGE_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        show(f"$ used {counts['input'] + counts['cached_input']} input and {counts['output']} output tokens of {args['model']}")

    def wait_for(self, path: Path) -> None:
        """Stand for a long tool call: busy until `path` exists (the test or demo says when)."""
        show(f"… working until {path.name} exists")
        deadline = time.monotonic() + WAIT_FOR_S
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait_reply(self, ask_id: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = int(max(0.0, deadline - time.monotonic()) * 1000)
            result = self.tool("wait_for_reply", ask_id=ask_id, timeout_ms=remaining)
            if result["status"] == "pending" and remaining > 0:
                continue
            for reply in result.get("replies", []):
                show(f"← reply from {reply['from']} to #{ask_id}: {reply['text']}")
            if result["status"] != "replied":
                show(f"… ask #{ask_id}: {result['status']}, still waiting on {', '.join(result.get('waiting_on', []))}")
            return

    @property
    def cursor_file(self) -> Path:
        return Path(self.config["agent_dir"]) / "script-cursor"

    def cursor(self) -> int:
        try:
            return int(self.cursor_file.read_text())
        except (OSError, ValueError):
            return 0

    def answer_inbox(self) -> None:
        """Handle every message since this agent's own cursor, injected ones included."""
        while True:
            inbox = self.tool("read_messages", since=self.cursor())
            for message in inbox["messages"]:
                self.handle(message)
                self.cursor_file.write_text(str(message["id"]))
            if not inbox.get("more"):
                return

    def handle(self, message: dict[str, Any]) -> None:
        kind, sender = message["kind"], message["from"]
        if kind != "ask":
            label = {"reply": f"reply to #{message['ask_id']}", "notice": "notice"}.get(kind, "message")
            show(f"✉ {label} from {sender}: {message['text']}")
            return
        show(f"✉ ask #{message['ask_id']} from {sender}: {message['text']}")
        text = self.script.replies.format_map(
            _Vars(agent=self.agent, text=message["text"], ask_id=message["ask_id"], **{"from": sender})
        )
        try:
            self.tool("post_reply", ask_id=message["ask_id"], text=text)
            show(f"↳ replied to #{message['ask_id']}: {text}")
        except ToolFailed as exc:
            show(f"! could not reply to #{message['ask_id']}: {exc}")
        self.hook("AfterTool")

    def turn(self, reason: str, steps: list[Step]) -> None:
        self.turns += 1
        show(f"── turn {self.turns} ({reason})")
        self.hook("TurnStart")
        try:
            skip = False
            for step in steps:
                if skip:
                    show(f"… skipped {step.kind} (not allowed)")
                    skip = False
                    continue
                said = self.run_step(step)
                if said == "stop":
                    show("── the turn ended with an error; waiting for a wake")
                    return
                skip = said == "skip"
            self.answer_inbox()
        except (TimeoutError, ToolFailed, OSError) as exc:
            show(f"! turn {self.turns} failed: {exc}")
        self.hook("TurnEnd")
        show("── idle; waiting for a wake")

    def run(self) -> None:
        show(f"script agent {self.agent} of pod {self.config['pod']} (workdir {self.workdir})")
        self.client = McpClient(self.config["mcp"]["command"])
        try:
            show(f"MCP tools: {', '.join(self.client.start())}")
            self.hook("SessionStart")
            if self.script.steps:
                self.turn("script", self.script.steps)
            else:
                show("── idle; waiting for a wake")
            while sys.stdin.buffer.readline():
                self.turn("woken", [])
            self.hook("SessionEnd")
        finally:
            self.client.close()


class _Vars(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _stop(signum: int, frame: object) -> None:
    raise Stopped


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: python -m podctl.scriptagent AGENT_JSON", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        if config.get("script_error"):
            raise ScriptError(str(config["script_error"]))
        script = load_script(config.get("script"), Path(config["workdir"]))
    except ScriptError as exc:
        print(f"podctl script agent {config.get('agent')}: {exc}", file=sys.stderr)
        return 2
    agent = ScriptAgent(config, script)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    try:
        agent.run()
    except Stopped:
        pass
    return 0
