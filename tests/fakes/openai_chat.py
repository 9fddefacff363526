"""A fake OpenAI-compatible Chat Completions API (`POST /v1/chat/completions`, streaming) for the real
CLIs that speak it in tests (OpenCode's `@ai-sdk/openai-compatible` provider, Qwen Code, ...).

Requests are recorded. Main requests (those that offer tools) are answered from a script, in order:
a text, or a call of one of our MCP tools (`{"call": "post_reply", "arguments": {...}}`, sent as
`<tool_prefix><tool>`, `podctl_<tool>` unless the CLI names MCP tools otherwise), or with `builtin`
of one of the CLI's own (`bash`); the arguments may be a function of the request body. Side requests (no tools: titles, summaries) get a short text.
An empty script answers "ok".
"""

from __future__ import annotations

import json
from typing import Any

from .http import FakeServer, Reply, step_arguments


class FakeChat(FakeServer):
    def __init__(self, tool_prefix: str = "podctl_") -> None:
        super().__init__()
        self.tool_prefix = tool_prefix

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        if method != "POST" or not path.startswith("/v1/chat/completions"):
            return Reply(status=404)
        return Reply(events=[f"data: {json.dumps(chunk)}\n\n" for chunk in self.answer(body)] + ["data: [DONE]\n\n"])

    def conversation(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if _is_main(r)]

    def answer(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            self.requests.append(body)
            self._n += 1
            n = self._n
            main = _is_main(body)
            step = (self.script.pop(0) if self.script else {"text": "ok"}) if main else {"text": "podctl test"}
        tokens = self.next_usage(main)
        if main:
            self.wait_gate()
        base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 1_795_000_000,
                "model": body.get("model", "fake-model")}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}

        chunks = [chunk({"role": "assistant", "content": ""})]
        if "call" in step:
            name = step["call"] if step.get("builtin") else f"{self.tool_prefix}{step['call']}"
            call = {"index": 0, "id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": ""}}
            chunks += [
                chunk({"tool_calls": [call]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(step_arguments(step, body))}}]}),
            ]
            finish = "tool_calls"
        else:
            chunks.append(chunk({"content": step["text"]}))
            finish = "stop"
        usage = {
            "prompt_tokens": tokens["input"] + tokens["cached"], "completion_tokens": tokens["output"],
            "total_tokens": tokens["input"] + tokens["cached"] + tokens["output"],
            "prompt_tokens_details": {"cached_tokens": tokens["cached"]},
            "completion_tokens_details": {"reasoning_tokens": tokens["reasoning"]},
        }
        chunks.append(chunk({}, finish, usage=usage))
        return chunks


def _is_main(body: dict[str, Any]) -> bool:
    return bool(body.get("tools"))


def request_text(body: dict[str, Any]) -> str:
    """Everything in a request's messages, as one string (for `in` checks)."""
    return json.dumps(body.get("messages", []), ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> set[str]:
    return {t.get("function", {}).get("name") for t in body.get("tools", [])}
