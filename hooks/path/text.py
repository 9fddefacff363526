"""What a hook injects into a model's context: the pod at session start, then new messages.

The text says who sent each message, its kind, its ask_id and how to answer, so that a model
needs no other instructions. Standard library only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from podctl.broker.records import HookAnswer, Message

TOOLS_HELP = (
    "Your podctl tools: list_agents() shows the team; tell(to, text) sends a note; ask(to, text) asks and"
    " returns an ask_id, then wait_for_reply(ask_id) waits (call it again while it says \"pending\");"
    " post_reply(ask_id, text) answers an ask sent to you; read_messages() lists your inbox."
)


def session_intro(ctx: dict[str, Any]) -> str:
    lines = [f"You are agent `{ctx['agent']}` of the podctl pod `{ctx['pod']}`, a team of coding agents."]
    if ctx.get("role"):
        lines.append(f"Your role: {ctx['role']}")
    others = [m for m in ctx.get("members", []) if m["name"] != ctx["agent"]]
    if others:
        lines.append("Your teammates (the human is `user`):")
        lines += [f"- {m['name']} ({m['cli']}): {m['role'] or 'no role given'}" for m in others]
    for route in ctx.get("routes", []):
        lines.append(
            f"Route `{route['name']}`: ask(to=\"{route['name']}\") asks {', '.join(route['to'])}"
            f" ({'every member answers' if route['mode'] == 'all' else 'the first answer wins'})."
        )
    lines.append(TOOLS_HELP)
    return "\n".join(lines)


def format_message(message: Message) -> str:
    kind, sender, mid = message["kind"], message["from"], message["id"]
    urgent = " URGENT" if message.get("urgent") else ""
    if kind == "ask" and message.get("answered"):
        head = (f"ask #{message['ask_id']} from {sender}{urgent} (you already answered this: another"
                " post_reply to it is only a follow-up)")
    elif kind == "ask":
        head = (f"ask #{message['ask_id']} from {sender}{urgent}; answer it with"
                f" post_reply(ask_id={message['ask_id']}, text=...)")
    elif kind == "reply":
        follow = " (follow-up)" if message.get("followup") else ""
        head = f"reply{follow} from {sender} to your ask #{message['ask_id']}"
    elif kind == "notice":
        head = f"notice from {sender}"
    else:
        head = f"message #{mid} from {sender}{urgent}"
    return f"[podctl {head}]\n{message['text']}"


def waiting_note(more: int) -> str:
    """What the agent is told about messages a hook did not inject (too many or too large at once)."""
    many = f"{more} more podctl messages are" if more > 1 else "1 more podctl message is"
    return f"{many} waiting (too many or too large to show here): call read_messages() to read them."


def too_large_note(pointer: dict[str, Any]) -> str:
    """A message too large to inject, pointed to once; it stays unread until read_messages."""
    what = f"ask #{pointer['ask_id']}" if pointer.get("kind") == "ask" else f"{pointer.get('kind')} #{pointer.get('id')}"
    return (f"[podctl {what} from {pointer.get('from')} is too large to show here ({pointer.get('bytes')} bytes):"
            " call read_messages() to read it.]")


def open_asks_note(asks: list[Message]) -> list[str]:
    """The asks to the agent that are still open, shown again to a new session (an earlier one was
    shown them, and they were not answered)."""
    lines = [f"{len(asks)} ask{'s' if len(asks) > 1 else ''} to you still open: shown to you before this session"
             " and not answered yet."]
    for ask in asks:
        if ask.get("too_large"):
            lines.append(f"[podctl ask #{ask['ask_id']} from {ask['from']} is too large to show here"
                         f" ({ask['too_large']} bytes): call read_messages(since={ask['id'] - 1}) to read it.]")
        else:
            lines.append(format_message(ask))
    return lines


def injection(response: HookAnswer) -> str | None:
    """The text to inject for one hook response, or None when there is nothing new."""
    parts = []
    if response.get("context"):
        parts.append(session_intro(response["context"]))
    messages = response.get("messages") or []
    if messages:
        count = f"{len(messages)} new podctl message{'s' if len(messages) > 1 else ''}"
        parts.append(f"{count} (already delivered; no need to read_messages for these):")
        parts += [format_message(m) for m in messages]
    for pointer in response.get("too_large") or []:
        parts.append(too_large_note(pointer))
    if response.get("open_asks"):
        parts += open_asks_note(response["open_asks"])
    more = response.get("more")
    if isinstance(more, int) and more > 0:
        parts.append(waiting_note(more))
    return "\n\n".join(parts) if parts else None
