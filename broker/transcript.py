"""Messages as a person reads them (`podctl tail`, the transcript pane). Standard library only."""

from __future__ import annotations

import time
from typing import Any

MARKS = {"queued": "…", "injected": "✓", "read": "✓✓"}


def delivery_marks(delivery: list[dict[str, Any]]) -> str:
    if not delivery:
        return ""
    return " [" + " ".join(f"{d['to']}{MARKS.get(d['state'], '?')}" for d in delivery) + "]"


def format_message(message: dict[str, Any], with_delivery: bool = True) -> str:
    """One message as `HH:MM:SS #id from -> to  kind: text`, continuation lines indented."""
    clock = time.strftime("%H:%M:%S", time.localtime(message.get("ts") or time.time()))
    kind = message.get("kind", "?")
    if kind == "log":
        head = f"{clock} #{message['id']} podctl"
    else:
        to = message.get("target") or ",".join(message.get("to") or [])
        label = kind
        if kind == "ask":
            label = f"ask #{message.get('ask_id')}"
        elif kind == "reply":
            label = f"reply to #{message.get('ask_id')}" + (" (follow-up)" if message.get("followup") else "")
        if message.get("urgent"):
            label += " URGENT"
        head = f"{clock} #{message['id']} {message.get('from')} → {to} {label}"
    text = str(message.get("text", "")).rstrip("\n").replace("\n", "\n    ")
    marks = delivery_marks(message.get("delivery") or []) if with_delivery else ""
    return f"{head}: {text}{marks}"


def format_event(frame: dict[str, Any]) -> str | None:
    """A live event for `tail --follow`, or None for events it does not show."""
    name, data = frame.get("event"), frame.get("data") or {}
    if name == "message":
        return format_message(data, with_delivery=False)
    if name == "state":
        return f"{time.strftime('%H:%M:%S', time.localtime(data.get('ts')))}    {data.get('name')} is {data.get('state')}"
    if name == "wake":
        return f"{time.strftime('%H:%M:%S', time.localtime(data.get('ts')))}    wake {data.get('name')}: {data.get('result')}"
    return None
