"""A fake Gemini API (`POST /v1beta/models/{model}:streamGenerateContent?alt=sse`) for the real
Gemini CLI in tests. Requests are recorded; conversation requests are answered from a script
(a text, a call of one of our MCP tools, or with `builtin` one of Gemini CLI's own, such as
`run_shell_command`); side requests with a JSON response schema are
answered generically."""

from __future__ import annotations

import json
from typing import Any

from .http import FakeServer, Reply, step_arguments


class FakeGemini(FakeServer):
    def unauthorized(self) -> Reply:
        return Reply({"error": {"code": 401, "message": "API key not valid. Please pass a valid API key.",
                                "status": "UNAUTHENTICATED"}}, status=401)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, method: str, path: str, body: dict[str, Any]) -> Reply:
        if method != "POST":
            return Reply(status=404)
        chunk = self.answer(body)
        return Reply(events=[f"data: {json.dumps(chunk)}\r\n\r\n"]) if "alt=sse" in path else Reply(chunk)

    def conversation(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if not _is_side(r)]

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append(body)
            side = _is_side(body)
            step = {} if side else (self.script.pop(0) if self.script else {"text": "ok"})
        tokens = self.next_usage(not side)
        if side:
            return _chunk([{"text": json.dumps({"reasoning": "done", "next_speaker": "user"})}], tokens)
        self.wait_gate()
        if "call" in step:
            args = step_arguments(step, body)
            name = step["call"] if step.get("builtin") else f"mcp_podctl_{step['call']}"
            return _chunk([{"functionCall": {"name": name, "args": args}}], tokens)
        return _chunk([{"text": step["text"]}], tokens)


def _chunk(parts: list[dict[str, Any]], tokens: dict[str, int]) -> dict[str, Any]:
    prompt, thoughts = tokens["input"] + tokens["cached"], tokens["reasoning"]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": prompt, "cachedContentTokenCount": tokens["cached"],
                          "candidatesTokenCount": tokens["output"] - thoughts, "thoughtsTokenCount": thoughts,
                          "totalTokenCount": prompt + tokens["output"]},
    }


def _is_side(body: dict[str, Any]) -> bool:
    config = body.get("generationConfig") or {}
    return bool(config.get("responseJsonSchema") or config.get("responseSchema"))


def request_text(body: dict[str, Any]) -> str:
    return json.dumps(body.get("contents", []), ensure_ascii=False)


def tool_names(body: dict[str, Any]) -> set[str]:
    return {d["name"] for tool in body.get("tools", []) for d in tool.get("functionDeclarations", [])}
