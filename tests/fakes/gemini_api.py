"""A fake Gemini API (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`) for the real
Gemini CLI in tests. Requests are recorded; conversation requests are answered from a script
(a text, or a call of one of our MCP tools); side requests with a JSON response schema are
answered generically."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeGemini:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                chunk = fake.answer(body)
                self.send_response(200)
                if "alt=sse" in self.path:
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                else:
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps(chunk).encode())
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGemini:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def conversation(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if not _is_side(r)]

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(body)
            if _is_side(body):
                return _chunk([{"text": json.dumps({"reasoning": "done", "next_speaker": "user"})}])
            step = self.script.pop(0) if self.script else {"text": "ok"}
        if self.delay_s:
            time.sleep(self.delay_s)
        if "call" in step:
            args = step["arguments"](body) if callable(step.get("arguments")) else step.get("arguments", {})
            return _chunk([{"functionCall": {"name": f"mcp_podctl_{step['call']}", "args": args}}])
        return _chunk([{"text": step["text"]}])


def _chunk(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
    }


def _is_side(body: dict[str, Any]) -> bool:
    config = body.get("generationConfig") or {}
    return bool(config.get("responseJsonSchema") or config.get("responseSchema"))


def request_text(body: dict[str, Any]) -> str:
    return json.dumps(body.get("contents", []), ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> set[str]:
    return {d["name"] for tool in body.get("tools", []) for d in tool.get("functionDeclarations", [])}
