"""What the hook path needs to find an adapter and read its answer. Standard library only,
and kept small: it is imported by every hook a CLI runs."""

from __future__ import annotations

import importlib

ADAPTER_MODULES = {
    "claude": "podctl.hooks.claude",
    "codex": "podctl.hooks.codex",
    "gemini": "podctl.hooks.gemini",
    "script": "podctl.hooks.script",
}


class HookResult:
    """What one native hook event means to podctl.

    `event`: our event (one of `wire.HOOK_EVENTS`), or None when this CLI event changes nothing.
    `inject`: whether new messages may be injected in this event's output.
    `attention_only`: inject only what needs the agent now (asks, replies, urgent tells); used at
    turn end, where injecting means continuing the turn, so plain tells wait for the next turn.
    """

    __slots__ = ("event", "inject", "attention_only")

    def __init__(self, event: str | None, inject: bool = True, attention_only: bool = False) -> None:
        self.event = event
        self.inject = inject
        self.attention_only = attention_only

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HookResult) and (self.event, self.inject, self.attention_only) == (
            other.event, other.inject, other.attention_only
        )

    def __repr__(self) -> str:
        return f"HookResult({self.event!r}, inject={self.inject}, attention_only={self.attention_only})"


def load_adapter(cli: str):
    """The ADAPTER object of a CLI's module (`podctl.hooks.<cli>`)."""
    try:
        module = ADAPTER_MODULES[cli]
    except KeyError:
        known = ", ".join(sorted(ADAPTER_MODULES))
        raise KeyError(f"unknown cli {cli!r}: podctl knows {known}") from None
    return importlib.import_module(module).ADAPTER
