"""A fake Anthropic Messages API (`POST /v1/messages`, streaming) for the real Claude Code in tests.

Requests are recorded. Conversation requests (those that offer our MCP tools) are answered from
a script: a text, or a call of one of our tools (`mcp__podctl__<tool>`); any other request (the
CLI's side requests) gets a short text.
"""

from __future__ import annotations

import json
from typing import Any

from .http import FakeServer, Reply, step_arguments


class FakeAnthropic(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        if method != "POST" or not path.startswith("/v1/messages"):
            return Reply(status=404)
        if "count_tokens" in path:
            return Reply({"input_tokens": 10})
        events = self.answer(body)
        if not body.get("stream"):
            return Reply(events[-1]["message"])
        return Reply(events=[f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events[:-1]])

    def unauthorized(self) -> Reply:
        return Reply({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
                     status=401)

    def conversation(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if _is_conversation(r)]

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.requests.append(body)
            self._n += 1
            n = self._n
            step = (self.script.pop(0) if self.script else {"text": "ok"}) if _is_conversation(body) else {"text": "ok"}
        if _is_conversation(body):
            self.wait_gate()
        model = body.get("model", "claude-test")
        tokens = self.next_usage(_is_conversation(body))
        usage = {"input_tokens": tokens["input"] - 100, "cache_creation_input_tokens": 100,
                 "cache_read_input_tokens": tokens["cached"], "output_tokens": 1}
        message = {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": usage}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
        if "call" in step:
            args = step_arguments(step, body)
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
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
             "usage": {"output_tokens": tokens["output"], "output_tokens_details": {"thinking_tokens": tokens["reasoning"]}}},
            {"type": "message_stop"},
            {"type": "final", "message": {**message, "content": final, "stop_reason": stop,
                                          "usage": {**usage, "output_tokens": tokens["output"]}}},
        ]
        return events


def _is_conversation(body: dict[str, Any]) -> bool:
    return any(str(t.get("name", "")).startswith("mcp__podctl__") for t in body.get("tools", []))


def request_text(body: dict[str, Any]) -> str:
    return json.dumps([body.get("system"), body.get("messages", [])], ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> set[str]:
    return {t.get("name") for t in body.get("tools", [])}
