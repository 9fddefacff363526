"""A fake Anthropic Messages API (`POST /v1/messages`, streaming) for the real Claude Code in tests.

Requests are recorded. Conversation requests (those that offer our MCP tools) are answered from
a script: a text, or a call of one of our tools (`mcp__podctl__<tool>`); any other request (the
CLI's side requests) gets a short text.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeAnthropic:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.script: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._n = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with fake._lock:
                    fake.paths.append("GET " + self.path)
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with fake._lock:
                    fake.paths.append("POST " + self.path)
                if "count_tokens" in self.path:
                    self._json({"input_tokens": 10})
                    return
                if not self.path.startswith("/v1/messages"):
                    self.send_response(404)
                    self.end_headers()
                    return
                events = fake.answer(body)
                if not body.get("stream"):
                    self._json(events[-1]["message"])
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for event in events[:-1]:
                    self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()

            def _json(self, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeAnthropic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def conversation(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if _is_conversation(r)]

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            self._n += 1
            n = self._n
            step = (self.script.pop(0) if self.script else {"text": "ok"}) if _is_conversation(body) else {"text": "ok"}
        if self.delay_s and _is_conversation(body):
            time.sleep(self.delay_s)
        model = body.get("model", "claude-test")
        usage = {"input_tokens": 10, "output_tokens": 5}
        message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": usage}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
        if "call" in step:
            args = step["arguments"](body) if callable(step.get("arguments")) else step.get("arguments", {})
            block = {"type": "tool_use", "id": f"toolu_{n}", "name": f"mcp__podctl__{step['call']}", "input": {}}
            events += [
                {"type": "content_block_start", "index": 0, "content_block": block},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": json.dumps(args)}},
                {"type": "content_block_stop", "index": 0},
            ]
            final = [{**block, "input": args}]
            stop = "tool_use"
        else:
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": step["text"]}},
                {"type": "content_block_stop", "index": 0},
            ]
            final = [{"type": "text", "text": step["text"]}]
            stop = "end_turn"
        events += [
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}},
            {"type": "message_stop"},
            {"type": "final", "message": {**message, "content": final, "stop_reason": stop}},
        ]
        return events


def _is_conversation(body: dict[str, Any]) -> bool:
    return any(str(t.get("name", "")).startswith("mcp__podctl__") for t in body.get("tools", []))


def request_text(body: dict[str, Any]) -> str:
    return json.dumps([body.get("system"), body.get("messages", [])], ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> set[str]:
    return {t.get("name") for t in body.get("tools", [])}
