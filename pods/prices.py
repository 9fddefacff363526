"""The shipped price table: USD per million tokens, per model, for input, cached input and output.

Transcribed from the vendors' public list prices (anthropic.com/pricing, openai.com/api/pricing,
ai.google.dev/gemini-api/docs/pricing) as of PRICES_AS_OF, for standard (not batch, not priority)
requests and, where a price depends on the prompt's length, the shorter tier. podctl cannot check
them at run time and they change: a pod file's `pricing:` overrides any of them, and adds models
(docs/usage.md). A model that is in neither has an unknown cost, never a guessed one.
"""

from __future__ import annotations

PRICES_AS_OF = "2025-11-20"

PRICES: dict[str, tuple[float, float, float]] = {
    # Anthropic: cache reads at 0.1x input; cache writes are counted as input (billed at 1.25x).
    "claude-opus-4-5": (5.0, 0.5, 25.0),
    "claude-opus-4-1": (15.0, 1.5, 75.0),
    "claude-opus-4": (15.0, 1.5, 75.0),
    "claude-sonnet-4-5": (3.0, 0.3, 15.0),
    "claude-sonnet-4": (3.0, 0.3, 15.0),
    "claude-3-7-sonnet": (3.0, 0.3, 15.0),
    "claude-haiku-4-5": (1.0, 0.1, 5.0),
    "claude-3-5-haiku": (0.8, 0.08, 4.0),
    # OpenAI
    "gpt-5.1": (1.25, 0.125, 10.0),
    "gpt-5.1-codex": (1.25, 0.125, 10.0),
    "gpt-5.1-codex-mini": (0.25, 0.025, 2.0),
    "gpt-5": (1.25, 0.125, 10.0),
    "gpt-5-codex": (1.25, 0.125, 10.0),
    "gpt-5-mini": (0.25, 0.025, 2.0),
    "gpt-5-nano": (0.05, 0.005, 0.4),
    "gpt-4.1": (2.0, 0.5, 8.0),
    "gpt-4.1-mini": (0.4, 0.1, 1.6),
    "o3": (2.0, 0.5, 8.0),
    "o4-mini": (1.1, 0.275, 4.4),
    # Google (prompts up to 200k tokens)
    "gemini-2.5-pro": (1.25, 0.125, 10.0),
    "gemini-2.5-flash": (0.3, 0.03, 2.5),
    "gemini-2.5-flash-lite": (0.1, 0.01, 0.4),
}
