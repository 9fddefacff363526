"""Messages as a person reads them (`podctl tail`, the transcript pane). Standard library only.

Message text comes from agents and is printed into terminals: every field is passed through
`visible`, so an escape sequence in it (clear screen, a pane title, a forged line after a carriage
return) is shown as text instead of being obeyed. The store and `--json` keep the raw text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

MARKS = {"queued": "…", "injected": "✓", "read": "✓✓"}

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
"""C0 controls (ESC, BEL, CR, backspace, ...), DEL and the C1 controls (U+0080-U+009F, which some
terminals obey like ESC sequences)."""
_FORMAT_RANGES = (
    (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C), (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2),
    (0x180E, 0x180E), (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
"""The invisible format characters (Unicode category Cf: right-to-left overrides and isolates,
zero-width spaces and joiners, the byte order mark, tags, ...) and the line and paragraph
separators (U+2028, U+2029): they reorder or hide text, so a line can read as something else.
Written out rather than computed (that takes 0.1 s, too long for `podctl tail`); a test checks
the list against the running Python's Unicode."""


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


_SHOWN = {code: _escape(code) for code in [*_CONTROLS, *(c for lo, hi in _FORMAT_RANGES for c in range(lo, hi + 1))]}
"""Each shown as `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`."""
_SHOWN_IN_TEXT = {code: shown for code, shown in _SHOWN.items() if chr(code) not in "\n\t"}


def visible(value: object, multiline: bool = False) -> str:
    """`value` as text that is safe to print to a terminal: control and invisible format characters
    become `\\xNN` / `\\uNNNN`.

    With `multiline` (message text), newlines and tabs are kept (and a CRLF is a newline)."""
    if multiline:
        return str(value).replace("\r\n", "\n").translate(_SHOWN_IN_TEXT)
    return str(value).translate(_SHOWN)


def delivery_marks(delivery: list[dict[str, Any]]) -> str:
    if not delivery:
        return ""
    return " [" + " ".join(f"{visible(d['to'])}{MARKS.get(d['state'], '?')}" for d in delivery) + "]"


def format_message(message: Mapping[str, Any], with_delivery: bool = True) -> str:
    """One message as `HH:MM:SS #id from -> to  kind: text [delivery marks]`, the marks on its first
    line (a long message's last line may be far below), continuation lines indented."""
    clock = time.strftime("%H:%M:%S", time.localtime(message.get("ts") or time.time()))
    kind = visible(message.get("kind", "?"))
    mid = visible(message.get("id"))
    if kind == "log":
        head = f"{clock} #{mid} podctl"
    else:
        to = visible(message.get("target") or ",".join(str(t) for t in message.get("to") or []))
        label = kind
        if kind == "ask":
            label = f"ask #{visible(message.get('ask_id'))}"
        elif kind == "reply":
            label = f"reply to #{visible(message.get('ask_id'))}" + (" (follow-up)" if message.get("followup") else "")
        if message.get("urgent"):
            label += " URGENT"
        head = f"{clock} #{mid} {visible(message.get('from'))} → {to} {label}"
    first, *rest = visible(message.get("text", ""), multiline=True).rstrip("\n").split("\n")
    marks = delivery_marks(message.get("delivery") or []) if with_delivery else ""
    return "\n    ".join([f"{head}: {first}{marks}", *rest])


def format_event(frame: dict[str, Any]) -> str | None:
    """A live event for `tail --follow`, or None for events it does not show."""
    name, data = frame.get("event"), frame.get("data") or {}
    if name == "message":
        return format_message(data, with_delivery=False)
    if name == "state":
        return f"{_clock(data)}    {visible(data.get('name'))} is {visible(data.get('state'))}"
    if name == "wake":
        return f"{_clock(data)}    wake {visible(data.get('name'))}: {visible(data.get('result'))}"
    if name == "gap":
        return (f"{_clock(data)}    … this view fell behind: {visible(data.get('skipped'))} events skipped"
                " (messages are shown again from the history; busy/idle and wake lines in between are not)")
    return None


def _clock(data: dict[str, Any]) -> str:
    return time.strftime("%H:%M:%S", time.localtime(data.get("ts")))
