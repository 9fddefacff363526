"""Each adapter reads its CLI's usage records into one meaning (lines as the CLIs write them,
copied from shared/reference/usage.md)."""

from __future__ import annotations

import json

from podctl.hooks.adapter import get_adapter
from podctl.hooks.usage import UsageRecord

CLAUDE_TEXT = json.loads(
    '{"parentUuid":"8073b337","isSidechain":false,"message":{"id":"msg_b3f1fb11e428481aa824","type":"message",'
    '"role":"assistant","model":"claude-opus-5-5","content":[{"type":"text","text":"Reading."}],"stop_reason":"tool_use",'
    '"usage":{"input_tokens":1234,"cache_creation_input_tokens":300,"cache_read_input_tokens":700,"output_tokens":56,'
    '"output_tokens_details":{"thinking_tokens":33},"service_tier":"standard"}},"requestId":"req_848aef17296e45cb",'
    '"type":"assistant","uuid":"439ee3be","timestamp":"2026-11-25T14:30:54.467Z","sessionId":"cf10e8ff"}'
)
CODEX_TURN = {"timestamp": "2026-11-25T14:44:04.600Z", "ordinal": 9, "type": "turn_context", "payload": {"model": "gpt-5.5"}}
CODEX_USAGE = json.loads(
    '{"timestamp":"2026-11-25T14:44:04.648Z","ordinal":11,"type":"token_usage_record","payload":{"thread_id":"01a2",'
    '"response_id":"resp_a9014b4deb4f4a02","usage":{"input_tokens":1234,"cached_input_tokens":700,'
    '"cache_write_input_tokens":0,"output_tokens":56,"reasoning_output_tokens":33,"total_tokens":1290},'
    '"turn_token_usage":{"input_tokens":1234,"cached_input_tokens":700,"output_tokens":56,"reasoning_output_tokens":33},'
    '"thread_token_usage":{"input_tokens":1234,"cached_input_tokens":700,"output_tokens":56,"reasoning_output_tokens":33}}}'
)
CODEX_COUNT = {"type": "event_msg", "payload": {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 1234},
                                                                                 "last_token_usage": {"input_tokens": 1234}}}}
GEMINI = json.loads(
    '{"id":"d899d66d-9fa8-4b5f-820a-65a4c0520876","timestamp":"2026-11-25T14:45:48.720Z","type":"gemini",'
    '"content":"First answer.","thoughts":[],"tokens":{"input":1234,"output":56,"cached":700,"thoughts":33,"tool":0,'
    '"total":1323},"model":"gemini-2.5-flash"}'
)

QWEN_REQUEST = json.loads(
    '{"uuid":"a47b3c05","parentUuid":"1b17c93c","sessionId":"a8b3684a","timestamp":"2026-12-04T19:32:33.462Z",'
    '"type":"system","cwd":"/w","version":"0.24.4","subtype":"ui_telemetry","systemPayload":{"uiEvent":{'
    '"event.name":"qwen-code.api_response","event.timestamp":"2026-12-04T19:32:33.461Z","response_id":"chatcmpl-1",'
    '"model":"qwen3-coder-plus","status_code":200,"duration_ms":881,"input_token_count":1934,"output_token_count":56,'
    '"cached_content_token_count":700,"thoughts_token_count":33,"total_token_count":1990,'
    '"prompt_id":"a8b3684a########0","auth_type":"openai"}}}'
)
QWEN_ASSISTANT = json.loads(
    '{"uuid":"1b17c93c","sessionId":"a8b3684a","timestamp":"2026-12-04T19:32:33.470Z","type":"assistant",'
    '"model":"qwen3-coder-plus","message":{"role":"model","parts":[{"text":"Done."}]},"usageMetadata":{'
    '"promptTokenCount":1934,"candidatesTokenCount":56,"thoughtsTokenCount":33,"totalTokenCount":1990,'
    '"cachedContentTokenCount":700}}'
)

COPILOT_REQUEST = json.loads(
    '{"type":"session.usage_record","data":{"usage":{"model":"gpt-5.5","modelDisplayName":"GPT-5.5","inputTokens":1934,'
    '"outputTokens":56,"cacheReadTokens":700,"cacheWriteTokens":0,"reasoningTokens":33,"cost":0.0,"duration":157,'
    '"initiator":"user","interactionType":"conversation-agent","isByok":true,"apiCallId":"chatcmpl-5",'
    '"apiEndpoint":"/chat/completions","accounting":{"sourceSessionId":"6ec44bb6","sequence":1,"usageId":"chatcmpl-5"},'
    '"finishReason":"tool_calls"}},"id":"61f33176-1a98-447e-923d-43544de0afbb","timestamp":"2026-12-04T19:51:33.946Z",'
    '"parentId":"64640f44"}'
)


def counts(record: UsageRecord | None) -> tuple[str, str, int, int, int, int]:
    assert record is not None
    return record.key, record.model, record.input, record.cached, record.output, record.reasoning


def test_claude_counts_cache_writes_as_input_and_repeats_a_response_under_one_key() -> None:
    parser = get_adapter("claude").usage_parser()
    first = parser.feed(CLAUDE_TEXT, "f:0")
    tool_block = json.loads(json.dumps(CLAUDE_TEXT))
    tool_block["message"]["content"] = [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]
    second = parser.feed(tool_block, "f:900")
    assert counts(first) == ("msg_b3f1fb11e428481aa824", "claude-opus-5-5", 1534, 700, 56, 33)
    assert first is not None and second is not None and second.key == first.key, "the line per content block is the same request"
    assert first.ts == 1795617054.467
    assert parser.feed({"type": "user", "message": {"role": "user", "content": "hi"}}, "f:1") is None


def test_codex_takes_the_model_from_the_turn_context_and_reads_only_the_per_response_record() -> None:
    adapter = get_adapter("codex")
    parser = adapter.usage_parser()
    assert parser.feed(CODEX_TURN, "r:0") is None
    record = parser.feed(CODEX_USAGE, "r:100")
    assert counts(record) == ("resp_a9014b4deb4f4a02", "gpt-5.5", 534, 700, 56, 33)
    assert parser.feed(CODEX_COUNT, "r:200") is None, "token_count repeats the totals: not counted"
    resumed = adapter.usage_parser(dict(parser.state))
    assert counts(resumed.feed(CODEX_USAGE, "r:100"))[1] == "gpt-5.5", "the turn's model survives a restart of the reader"


def test_gemini_subtracts_cached_from_input_adds_thoughts_to_output_and_keys_a_reappended_record_once() -> None:
    parser = get_adapter("gemini").usage_parser()
    record = parser.feed(GEMINI, "s:0")
    assert counts(record) == ("d899d66d-9fa8-4b5f-820a-65a4c0520876", "gemini-2.5-flash", 534, 700, 89, 33)
    again = parser.feed({**GEMINI, "toolCalls": [{"id": "c1", "name": "read_file", "status": "success"}]}, "s:500")
    assert again is not None and record is not None and again.key == record.key
    assert parser.feed({"$set": {"messages": [GEMINI]}}, "s:900") is None


def test_a_line_without_usage_or_with_zero_usage_is_no_request() -> None:
    synthetic = json.loads(json.dumps(CLAUDE_TEXT))
    synthetic["message"]["model"] = "<synthetic>"
    synthetic["message"]["usage"] = {"input_tokens": 0, "output_tokens": 0}
    assert get_adapter("claude").usage_parser().feed(synthetic, "f:0") is None
    assert get_adapter("script").usage_parser().feed({"type": "note"}, "u:0") is None


def test_qwen_reads_each_request_from_its_telemetry_record_not_the_message_that_repeats_it() -> None:
    parser = get_adapter("qwen").usage_parser()
    record = parser.feed(QWEN_REQUEST, "c:0")
    assert counts(record) == ("chatcmpl-1", "qwen3-coder-plus", 1234, 700, 56, 33)
    assert record is not None and record.ts == 1796412753.461
    assert parser.feed(QWEN_ASSISTANT, "c:700") is None, "the assistant message carries the same request's tokens"
    tool_call = {**QWEN_REQUEST, "systemPayload": {"uiEvent": {"event.name": "qwen-code.tool_call", "call_id": "call_1"}}}
    assert parser.feed(tool_call, "c:900") is None


def test_copilot_reads_its_usage_records_with_cache_reads_inside_the_input() -> None:
    parser = get_adapter("copilot").usage_parser()
    record = parser.feed(COPILOT_REQUEST, "e:0")
    assert counts(record) == ("chatcmpl-5", "gpt-5.5", 1234, 700, 56, 33)
    assert record is not None and record.ts == 1796413893.946
    assert parser.feed({"type": "assistant.message", "data": {"content": "Done."}, "id": "x"}, "e:900") is None
