"""The HTTP part every fake model server shares: a threaded server on 127.0.0.1 (port 0) that
records each JSON request and sends what the vendor-specific `respond` returns."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class Reply:
    """A whole JSON body, or server-sent events (one `data:` per chunk)."""

    def __init__(self, body: Any = None, events: list[str] | None = None, status: int = 200) -> None:
        self.body, self.events, self.status = body, events, status


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[dict[str, Any]] = []
        """What conversation requests are answered with, in order (each fake's `answer` reads it)."""
        self._n = 0
        self.paths: list[str] = []
        self.lock = threading.Lock()
        self.usage_log: list[dict[str, Any]] = []
        self._usage_lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.refusing = False
        """Answer every request 401 (a revoked key): the CLI's model server turns it away."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(fake.dispatch("GET", self.path, {}))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                self._send(fake.dispatch("POST", self.path, body))

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                if reply.events is not None:
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for event in reply.events:
                        self.wfile.write(event.encode())
                        self.wfile.flush()
                    return
                raw = json.dumps(reply.body if reply.body is not None else {}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def dispatch(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.paths.append(f"{method} {path}")
            refusing = self.refusing
        if refusing and method == "POST":
            self.record(body)
            return self.unauthorized()
        return self.respond(method, path, body)

    def unauthorized(self) -> Reply:
        """The vendor's answer to a bad API key (401), given to every request while `refusing`."""
        return Reply({"error": {"code": 401, "message": "Incorrect API key provided: dummy"}}, status=401)

    def respond(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        raise NotImplementedError

    def next_usage(self, conversation: bool) -> dict[str, int]:
        """The tokens the k-th answer reports, in podctl's meaning (input without cached, output with
        reasoning): different for every answer, so a sum shows each request counted exactly once.
        Each fake writes them in its vendor's fields."""
        with self._usage_lock:
            k = len(self.usage_log) + 1
            usage = {"input": 1200 + k, "cached": 300 + k, "output": 50 + k, "reasoning": 7 + k}
            self.usage_log.append({**usage, "conversation": conversation})
        return usage

    def reported(self) -> dict[str, int]:
        """What the conversation requests reported, summed, as `podctl usage --json` names it."""
        with self._usage_lock:
            entries = [u for u in self.usage_log if u["conversation"]]
        return {
            "input_tokens": sum(u["input"] for u in entries), "cached_input_tokens": sum(u["cached"] for u in entries),
            "output_tokens": sum(u["output"] for u in entries), "reasoning_tokens": sum(u["reasoning"] for u in entries),
            "requests": len(entries),
        }

    def hold(self) -> None:
        """Answer no conversation request until `release()`: the agent stays mid-turn (busy) for
        exactly as long as the test needs, with no fixed delay."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def wait_gate(self, timeout: float = 120.0) -> None:
        if not self.gate.wait(timeout):
            raise RuntimeError("the fake model server was held and never released")

    def record(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(body)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def step_arguments(step: dict[str, Any], body: dict[str, Any]) -> Any:
    """A scripted tool call's arguments; they may be a function of the request body."""
    args = step.get("arguments", {})
    return args(body) if callable(args) else args
