"""The script agent: a deterministic stand-in for a model CLI, for demos, CI and dry runs.

Like a real CLI it talks to the pod only through its MCP server (`podctl shim`, through the real
`mcp` client) and runs its adapter's hook commands at the moments a CLI would: session start,
turn start, after each tool call, turn end. Its first turn plays the script's steps; every line
on its standard input (the wake nudge) starts another turn in which it reads its inbox and
answers the asks with the script's reply template.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podctl.broker.transcript import visible
from podctl.pods.script import USAGE_COUNTS, USAGE_FILE, WAIT_FOR_S, Script, ScriptError, Step, load_script

if TYPE_CHECKING:
    from mcp import Client

HOOK_TIMEOUT_S = 10.0
TOOL_TIMEOUT_S = 120.0


def show(text: str) -> None:
    """Print a line to the agent's pane; message text in it cannot drive the terminal (`visible`)."""
    stamp = time.strftime("%H:%M:%S")
    print(f"{stamp} {visible(text, multiline=True)}", flush=True)


class ToolFailed(RuntimeError):
    pass


class ScriptAgent:
    def __init__(self, config: dict[str, Any], script: Script) -> None:
        self.config = config
        self.script = script
        self.agent = config["agent"]
        self.workdir = Path(config["workdir"])
        self.client: Client | None = None
        self.turns = 0

    async def tool(self, name: str, **args: Any) -> dict[str, Any]:
        assert self.client is not None
        result = await asyncio.wait_for(self.client.call_tool(name, args), timeout=TOOL_TIMEOUT_S)
        from mcp.types import TextContent

        first = result.content[0]
        data: dict[str, Any] = json.loads(first.text if isinstance(first, TextContent) else "{}")
        if result.is_error:
            raise ToolFailed(data.get("error", {}).get("message", str(data)))
        return data

    async def hook(self, event: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one of its hooks as a CLI does (the event's facts on stdin); what it answered, as JSON."""
        argv = self.config["hooks"][event]
        payload = json.dumps({"event": event, "agent": self.agent, "cwd": str(self.workdir), **(facts or {})}).encode()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        timeout = float(self.config.get("hold_timeout_s") or HOOK_TIMEOUT_S) if event == "Permission" else HOOK_TIMEOUT_S
        try:
            out, _ = await asyncio.wait_for(proc.communicate(payload), timeout=timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            show(f"! hook {event} timed out")
            return {}
        answer: dict[str, Any] = {}
        with contextlib.suppress(ValueError, AttributeError):
            answer = dict(json.loads(out)) if out.strip() else {}
        if out.strip() and event != "Permission":
            with contextlib.suppress(ValueError):
                context = json.loads(out).get("additionalContext")
                if context:
                    show(f"⇢ injected at {event}:")
                    for line in context.split("\n"):
                        print(f"    {visible(line, multiline=True)}", flush=True)
        return answer

    async def ask_permission(self, tool: str, detail: str) -> bool:
        """A `permission` step: ask to run `tool` as a CLI does and wait for the answer (podctl's,
        an approver's, an `always`); under `permissions: full` nothing asks."""
        if self.config.get("permissions") == "full":
            show(f"✓ {tool} {detail}: allowed (permissions: full)")
            return True
        show(f"? may I run {tool} {detail}")
        answer = await self.hook("Permission", {"tool_name": tool, "tool_input": {"command": detail}})
        if answer.get("decision") in ("allow", "always"):
            show(f"✓ {tool} {detail}: allowed")
            return True
        show(f"✗ {tool} {detail}: {answer.get('message') or 'no answer: not run'}")
        return False

    async def run_step(self, step: Step) -> str | None:
        """One step; "skip" when the next one must not run (a permission refused), "stop" when the
        turn ends here (a `fail`)."""
        args = step.args
        if step.kind == "permission":
            return None if await self.ask_permission(str(args["tool"]), str(args["detail"])) else "skip"
        if step.kind == "fail":
            show(f"! {args['text']}")
            await self.hook("Failure", {"error": "unknown", "last_assistant_message": str(args["text"])})
            return "stop"
        if step.kind == "sleep":
            await asyncio.sleep(args["seconds"])
            return None
        if step.kind == "say":
            show(args["text"])
            return None
        if step.kind == "wait_for":
            await self.wait_for(self.workdir / args["path"])
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
            sent = await self.tool("tell", to=args["to"], text=str(args["text"]), urgent=bool(args.get("urgent", False)))
            show(f"→ tell {args['to']}: {args['text']}  (#{sent['message_id']})")
        elif step.kind == "ask":
            asked = await self.tool("ask", to=args["to"], text=str(args["text"]))
            show(f"? ask {args['to']} #{asked['ask_id']}: {args['text']}")
            await self.wait_reply(asked["ask_id"], float(args.get("timeout", 120)))
        await self.hook("AfterTool")
        return None

    def record_usage(self, args: dict[str, Any]) -> None:
        """Append one model request's tokens to this agent's usage file, as a CLI appends to its session file."""
        counts = {name: int(args.get(name, 0)) for name in USAGE_COUNTS}
        record = {"type": "usage", "id": uuid.uuid4().hex, "ts": time.time(), "model": str(args["model"]), **counts}
        with (Path(self.config["agent_dir"]) / USAGE_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        show(f"$ used {counts['input'] + counts['cached_input']} input and {counts['output']} output tokens of {args['model']}")

    async def wait_for(self, path: Path) -> None:
        """Stand for a long tool call: busy until `path` exists (the test or demo says when)."""
        show(f"… working until {path.name} exists")
        deadline = time.monotonic() + WAIT_FOR_S
        while not path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def wait_reply(self, ask_id: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = int(max(0.0, deadline - time.monotonic()) * 1000)
            result = await self.tool("wait_for_reply", ask_id=ask_id, timeout_ms=remaining)
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

    async def answer_inbox(self) -> None:
        """Handle every message since this agent's own cursor, injected ones included."""
        while True:
            inbox = await self.tool("read_messages", since=self.cursor())
            for message in inbox["messages"]:
                await self.handle(message)
                self.cursor_file.write_text(str(message["id"]))
            if not inbox.get("more"):
                return

    async def handle(self, message: dict[str, Any]) -> None:
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
            await self.tool("post_reply", ask_id=message["ask_id"], text=text)
            show(f"↳ replied to #{message['ask_id']}: {text}")
        except ToolFailed as exc:
            show(f"! could not reply to #{message['ask_id']}: {exc}")
        await self.hook("AfterTool")

    async def turn(self, reason: str, steps: list[Step]) -> None:
        self.turns += 1
        show(f"── turn {self.turns} ({reason})")
        await self.hook("TurnStart")
        try:
            skip = False
            for step in steps:
                if skip:
                    show(f"… skipped {step.kind} (not allowed)")
                    skip = False
                    continue
                said = await self.run_step(step)
                if said == "stop":
                    show("── the turn ended with an error; waiting for a wake")
                    return
                skip = said == "skip"
            await self.answer_inbox()
        except (TimeoutError, ToolFailed, OSError) as exc:
            show(f"! turn {self.turns} failed: {exc}")
        await self.hook("TurnEnd")
        show("── idle; waiting for a wake")

    async def run(self) -> None:
        from mcp import Client  # here, not at the top: a bad script is reported before this costly import
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(command=self.config["mcp"]["command"][0], args=self.config["mcp"]["command"][1:])
        show(f"script agent {self.agent} of pod {self.config['pod']} (workdir {self.workdir})")
        async with Client(params, read_timeout_seconds=TOOL_TIMEOUT_S + 10) as client:
            self.client = client
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            show(f"MCP tools: {', '.join(tools)}")
            await self.hook("SessionStart")
            if self.script.steps:
                await self.turn("script", self.script.steps)
            else:
                show("── idle; waiting for a wake")
            reader = await _stdin_reader()
            while True:
                line = await reader.readline()
                if not line:
                    break
                await self.turn("woken", [])
            await self.hook("SessionEnd")


class _Vars(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: python -m podctl.scriptagent AGENT_JSON", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        script = load_script(config.get("script"), Path(config["workdir"]))
    except ScriptError as exc:
        print(f"podctl script agent {config.get('agent')}: {exc}", file=sys.stderr)
        return 2
    agent = ScriptAgent(config, script)

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()

    asyncio.run(guarded())
    return 0
