"""A fake OpenAI Responses API (`POST /v1/responses`, SSE) for driving the real Codex CLI in tests.

Each request is recorded. Conversation requests are answered from a script, in order: a text
answer, or a call of one of the MCP tools (`{"call": "post_reply", "arguments": {...}}`; the
arguments may be a function of the request body), or of one of Codex's own tools
(`{"call": "exec_command", "builtin": True, "arguments": {"cmd": ...}}`). The
thread-title side request of the TUI is answered on its own. An empty script answers "ok".
"""

from __future__ import annotations

import json
from typing import Any

from .http import FakeServer, Reply, step_arguments


class FakeResponses(FakeServer):
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        if method != "POST" or not path.startswith("/v1/responses"):
            return Reply(status=404)
        return Reply(events=[f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in self.answer(body)])

    def conversation(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if not _is_title(r)]

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.requests.append(body)
            self._n += 1
            n = self._n
            step = {"text": '{"title": "podctl test"}'} if _is_title(body) else (
                self.script.pop(0) if self.script else {"text": "ok"}
            )
        if not _is_title(body):
            self.wait_gate()
        if "call" in step:
            arguments = step_arguments(step, body)
            item = {
                "type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}", "namespace": "mcp__podctl",
                "name": step["call"], "arguments": json.dumps(arguments), "status": "completed",
            }
            if step.get("builtin"):  # one of Codex's own tools (exec_command, ...), not a podctl tool
                del item["namespace"]
        else:
            item = {
                "type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": step["text"], "annotations": []}],
            }
        response = {"id": f"resp_{n}", "object": "response", "status": "in_progress", "output": []}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": response},
            {"type": "response.output_item.added", "output_index": 0, "item": {**item, "status": "in_progress"}},
        ]
        if item["type"] == "message":
            events += [
                {"type": "response.content_part.added", "item_id": item["id"], "output_index": 0, "content_index": 0,
                 "part": {"type": "output_text", "text": "", "annotations": []}},
                {"type": "response.output_text.delta", "item_id": item["id"], "output_index": 0, "content_index": 0,
                 "delta": step["text"]},
                {"type": "response.output_text.done", "item_id": item["id"], "output_index": 0, "content_index": 0,
                 "text": step["text"]},
                {"type": "response.content_part.done", "item_id": item["id"], "output_index": 0, "content_index": 0,
                 "part": item["content"][0]},
            ]
        else:
            events += [
                {"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": 0,
                 "delta": item["arguments"]},
                {"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": 0,
                 "arguments": item["arguments"]},
            ]
        tokens = self.next_usage(not _is_title(body))
        usage = {"input_tokens": tokens["input"] + tokens["cached"], "input_tokens_details": {"cached_tokens": tokens["cached"]},
                 "output_tokens": tokens["output"], "output_tokens_details": {"reasoning_tokens": tokens["reasoning"]},
                 "total_tokens": tokens["input"] + tokens["cached"] + tokens["output"]}
        events += [
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": {**response, "status": "completed", "output": [item], "usage": usage}},
        ]
        return events


def _is_title(body: dict[str, Any]) -> bool:
    fmt = (body.get("text") or {}).get("format") or {}
    return fmt.get("type") == "json_schema"


def request_text(body: dict[str, Any]) -> str:
    """Everything in a request's input, as one string (for `in` checks)."""
    return json.dumps(body.get("input", []), ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> set[str]:
    names = set()
    for tool in body.get("tools", []):
        if tool.get("type") == "namespace":
            names |= {f"{tool['name']}.{t['name']}" for t in tool.get("tools", [])}
        elif "name" in tool:
            names.add(tool["name"])
    return names
