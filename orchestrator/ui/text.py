"""How the live view words things: agent cells, message lines with their delivery marks, the
waiting panel. Every value from the pod goes through `visible` (control characters shown as
`\\xNN`, never obeyed) into Rich `Text` (never parsed as markup)."""

from __future__ import annotations

import time
from typing import Any

from podctl.broker.transcript import MARKS, visible
from podctl.pods.usage import cost_label, tokens_label
from rich.text import Text

from .model import AgentRow, PodView

STATE_STYLES = {"busy": "bold yellow", "idle": "green", "starting": "cyan", "stopped": "red",
                "blocked": "bold reverse magenta", "failed": "bold reverse red"}
LABEL_CHARS = 160
"""A message line shows this much of its first line; Enter on it shows the whole text."""


def ago(ts: float | None, now: float) -> str:
    """`12s`, `4m`, `3h`, `2d` since `ts`, or `-`."""
    if not ts:
        return "-"
    seconds = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def left(seconds: float) -> str:
    """Time left, as `9m12s`, `40s`, or `expired`."""
    if seconds <= 0:
        return "expired"
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


NAME_CHARS = 16
"""An agent's name in the table is cut to this (with `…`), so its state never leaves an 80-column screen."""


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def agent_cells(row: AgentRow, now: float) -> tuple[Text, ...]:
    """The AGENT_COLUMNS of one agent: what matters most first, so a narrow terminal (80x24) cuts only
    the least of it. The last wake says only its outcome (`status` says why)."""
    shown = row.shown_state
    since = (row.blocked or row.failed or {}).get("since") or row.state_ts
    clock = f" {ago(since, now)}" if since and shown != "stopped" else ""
    state = Text(shown + clock, style=STATE_STYLES.get(shown, ""))
    if row.remote:
        heard = f"reported {ago(row.reported_at, now)} ago" if row.reported_at else "never reported"
        state.append(f" @{visible(row.site or '?')}, {heard}", style="dim")
    if row.handed_off_to:
        state.append(f" → {_cut(visible(row.handed_off_to), NAME_CHARS)}", style="dim")
    if row.over_budget:
        state.append(" over budget", style="bold red")
    wake = "-"
    if row.last_wake_ts:
        wake = f"{ago(row.last_wake_ts, now)} {visible((row.last_wake or '').split(':', 1)[0])}"
    return (
        Text(_cut(visible(row.name), NAME_CHARS), style="bold"),
        state,
        Text(str(row.unread), style="bold" if row.unread else "dim"),
        Text(tokens_label(row.usage), style="" if row.usage else "dim"),
        Text(cost_label(row.usage), style="" if row.usage else "dim"),
        Text(wake),
        Text(ago(row.last_activity, now)),
        Text("up" if row.tools_ready else "down", style="" if row.tools_ready else "dim"),
        Text(visible(row.cli)),
    )


AGENT_COLUMNS = ("agent", "state", "unread", "tokens", "cost", "last wake", "active", "tools", "cli")


def needs_text(view: PodView, now: float) -> Text:
    """The agents that need a person, each with what holds it in full and what the keys do (shown
    above the agents table while there are any)."""
    out = Text()
    for row in view.needing():
        need = row.blocked or row.failed or {}
        out.append(f"{visible(row.name)} ", style="bold magenta")
        if row.state == "failed":
            out.append(f"cannot work ({ago(need.get('since'), now)}): ", style="bold")
            out.append(visible(need.get("reason") or "", multiline=True))
            out.append("\n   Enter: its pane (fix it there, then r restarts it)\n", style="dim")
            continue
        tool = f"{visible(need.get('tool'))}: " if need.get("tool") else ""
        out.append(f"needs you: {visible(need.get('kind') or 'dialog')} ({ago(need.get('since'), now)}) {tool}", style="bold")
        out.append(visible(need.get("detail") or "", multiline=True))
        if need.get("awaiting"):
            out.append(f"  (asked {visible(need['awaiting'])})", style="dim")
        keys = f"{visible(need.get('how') or 'answer in its pane')} · Enter its pane"
        if need.get("answerable"):
            keys = ("y allow · Y always · n deny (a reason) · Enter its pane" if need.get("kind") == "permission"
                    else "n deny (a reason) · Enter its pane")
        out.append(f"\n   {keys}\n", style="dim")
    out.rstrip()
    return out


def marks(message: dict[str, Any]) -> str:
    delivery: dict[str, str] = message.get("delivery") or {}
    return " ".join(f"{visible(to)}{MARKS.get(state, '?')}" for to, state in delivery.items())


def _first_line(text: str) -> str:
    lines = text.strip("\n").split("\n")
    head = lines[0] if lines else ""
    more = len(lines) - 1
    if len(head) > LABEL_CHARS:
        head = head[: LABEL_CHARS - 1] + "…"
    return head + (f"  (+{more} lines)" if more > 0 else "")


def message_line(message: dict[str, Any], threaded: bool = False) -> Text:
    """One message as a line: time, id, who to whom, kind, the start of its text, delivery marks.
    A reply drawn under its ask (`threaded`) leaves out what the thread already says."""
    clock = time.strftime("%H:%M:%S", time.localtime(message.get("ts") or 0))
    kind = message.get("kind", "?")
    origin = str(message.get("origin") or "")
    line = Text(f"{clock} ", style="dim")
    line.append(f"#{visible(message.get('id'))} ", style="dim")
    if origin.startswith("rule:"):
        line.append(f"[rule {visible(origin[5:])}] ", style="magenta")
    elif origin == "handoff":
        line.append("[hand-off] ", style="magenta")
    text = visible(message.get("text", ""), multiline=True)
    if kind == "log":
        line.append(f"podctl: {_first_line(text)}", style="dim italic")
        return line
    sender = visible(message.get("from"))
    if threaded:
        line.append(f"{sender} replied", style="bold cyan")
    else:
        to = visible(message.get("target") or ",".join(str(t) for t in message.get("to") or []))
        line.append(f"{sender} → {to} ", style="bold")
        label = {"ask": f"ask #{visible(message.get('ask_id'))}", "reply": f"reply to #{visible(message.get('ask_id'))}"}
        line.append(label.get(kind, kind), style="cyan" if kind in ("ask", "reply") else "")
    if message.get("followup"):
        line.append(" (follow-up)")
    if message.get("urgent"):
        line.append(" URGENT", style="bold red")
    line.append(": " + _first_line(text))
    if message.get("delivery"):
        line.append(f"  [{marks(message)}]", style="dim")
    return line


def message_detail(message: dict[str, Any]) -> Text:
    """The whole message, for the message view (Enter on a message)."""
    out = message_line(message)
    out.append("\n\n")
    out.append(visible(message.get("text", ""), multiline=True))
    if message.get("delivery"):
        out.append("\n\ndelivery: ", style="bold")
        out.append(marks(message) + f"   ({MARKS['queued']} queued, {MARKS['injected']} in the model's context,"
                   f" {MARKS['read']} read)", style="dim")
    return out


def waiting_text(view: PodView, now: float) -> Text:
    """Open asks (who answered, who is missing, time left) and rules (rounds, cooldown)."""
    out = Text()
    out.append("Open asks\n", style="bold underline")
    if not view.asks:
        out.append("  none: every ask has its answer\n", style="dim")
    for ask in view.asks:
        where = visible(ask.get("route") or ask.get("target") or "")
        out.append(f"  #{ask['ask_id']} ", style="bold")
        out.append(f"{visible(ask['from'])} → {where} ({visible(ask['mode'])})")
        if ask.get("origin"):
            out.append(f" [{visible(ask['origin'])}]", style="magenta")
        deadline = ask.get("deadline")
        if deadline:
            remaining = deadline - now
            out.append(f"  {left(remaining)}" + (" left" if remaining > 0 else ""),
                       style="red" if remaining <= 0 else "")
        out.append("\n")
        answered = [visible(t["name"]) for t in ask.get("targets", []) if t.get("reply_id")]
        out.append("     waiting on: ", style="dim")
        out.append(", ".join(visible(n) for n in ask.get("waiting_on", [])) or "-", style="bold yellow")
        out.append("   answered: ", style="dim")
        out.append(", ".join(answered) or "-")
        out.append(f"\n     {_first_line(visible(ask.get('text', ''), multiline=True))[:100]}\n", style="dim")
    out.append("\nRules\n", style="bold underline")
    if not view.rules:
        out.append("  none\n", style="dim")
    for rule in view.rules:
        out.append(f"  {visible(rule['name'])}", style="bold")
        out.append(f"  on {visible(rule['on'])} of {visible(rule.get('agent') or 'any agent')}")
        target = f"hand-off to {rule['handoff']}" if rule.get("handoff") else f"ask {rule.get('ask')}"
        out.append(f" → {visible(target)}")
        out.append(f"   rounds {rule['rounds']}/{rule['max_rounds']}",
                   style="bold red" if rule["rounds"] >= rule["max_rounds"] else "")
        cooldown = float(rule.get("cooldown_s") or 0)
        if rule.get("last_fired") and cooldown:
            remaining = rule["last_fired"] + cooldown - now
            out.append(f"   cooldown {left(remaining)}" if remaining > 0 else "   ready")
        if rule.get("open_ask"):
            out.append(f"   waiting for ask #{rule['open_ask']}", style="yellow")
        out.append("\n")
    return out
