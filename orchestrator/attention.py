"""Attention as the person sees it from the command line: answer an agent's permission request
(`podctl approve` / `deny`), wait for agents to need someone (`podctl wait`), and the words for an
agent that is blocked or failed (status, ls, the live view). Standard library and the wire
protocol only: `status` and `ls` print these on their fast path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from podctl.broker import wire
from podctl.pods.errors import PodctlError, UsageError

from .talk import user_client

if TYPE_CHECKING:
    from podctl.broker.records import AgentStatus, Decision

UNTIL = ("blocked", "failed", "idle")
POLL_S = 0.2
TIMEOUT_EXIT = 3
"""`podctl wait` ran out of time (like `send --wait`)."""


class WaitTimedOut(PodctlError):
    exit_code = TIMEOUT_EXIT


def answer(pod: str, agent: str, decision: Decision, reason: str = "", request: int | None = None) -> str:
    """Answer `agent`'s permission request; the line that says what was answered."""
    args: dict[str, Any] = {"name": agent}
    if request is not None:
        args["request"] = request
    if decision == "deny":
        args["reason"] = reason
    elif decision == "always":
        args["always"] = True
    with user_client(pod) as client:
        try:
            result = client.call("deny", **args) if decision == "deny" else client.call("approve", **args)
        except wire.BrokerError as exc:
            raise PodctlError(exc.message) from None
    verb = {"allow": "approved", "always": "approved (always)", "deny": "denied"}[decision]
    said = f"{verb} {agent}: {line_of(result['tool'], result['detail'])}"
    return said + (f" (reason: {reason})" if decision == "deny" and reason else "")


def line_of(tool: str | None, detail: str) -> str:
    """`Bash  touch build/x`: a request on one line (its detail's first line)."""
    first = detail.strip().split("\n", 1)[0]
    more = " …" if "\n" in detail.strip() else ""
    return f"{tool}  {first}{more}" if tool else f"{first}{more}"


def need_text(agent: Mapping[str, Any]) -> str:
    """What holds an agent, in a few words: `permission: Bash  touch build/x` or the failure."""
    if agent.get("blocked"):
        blocked = agent["blocked"]
        text = f"{blocked.get('kind') or 'dialog'}: {line_of(blocked.get('tool'), blocked.get('detail') or '')}"
        if blocked.get("awaiting"):
            text += f" (asked {blocked['awaiting']})"
        return text
    if agent.get("failed"):
        return f"failed: {agent['failed'].get('reason') or ''}"
    return ""


def how_to_answer(pod: str, agent: dict[str, Any]) -> str:
    """What the person does about it: the commands, or where to look."""
    blocked = agent.get("blocked") or {}
    name = agent["name"]
    if blocked.get("answerable") and blocked.get("kind") == "permission":
        return f"podctl approve {pod} {name} (--always) | podctl deny {pod} {name} --reason TEXT"
    if blocked.get("answerable"):
        return f"podctl deny {pod} {name} --reason TEXT, or answer in its pane: podctl attach {pod}"
    if agent.get("failed"):
        return f"see its pane (podctl attach {pod}); podctl restart {pod} {name} once fixed"
    return f"{blocked.get('how') or 'answer in its pane'}: podctl attach {pod}"


def needing(agents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agents that need a person: blocked ones first, then failed ones."""
    rows = [a for a in agents if a.get("state") in ("blocked", "failed")]
    return sorted(rows, key=lambda a: (a["state"] != "blocked", (a.get(a["state"]) or {}).get("since") or 0))


def _reached(agents: list[AgentStatus], until: str, agent: str | None) -> list[AgentStatus]:
    """The agents that meet `until` (every chosen one for `idle`, any for blocked and failed)."""
    chosen = [a for a in agents if agent is None or a["name"] == agent]
    if agent is not None and not chosen:
        raise PodctlError(f"no agent {agent!r} in the pod (agents: {', '.join(a['name'] for a in agents)})")
    if until == "idle":
        return chosen if chosen and all(a["state"] == "idle" for a in chosen) else []
    return [a for a in chosen if a["state"] == until]


def wait(pod: str, until: str, agent: str | None = None, timeout: float | None = None) -> list[str]:
    """Wait until an agent (or `agent`) is blocked or failed, or every agent (or `agent`) is idle;
    the lines that say so. Raises WaitTimedOut (exit 3) after `timeout` seconds."""
    if until not in UNTIL:
        raise UsageError(f"--until must be one of {', '.join(UNTIL)}, not {until!r}")
    if timeout is not None and not timeout >= 0:
        raise UsageError("--timeout is a number of seconds, 0 or more")
    deadline = time.monotonic() + timeout if timeout is not None else None
    with user_client(pod) as client:
        while True:
            agents = client.call("status")["agents"]
            found = _reached(agents, until, agent)
            if found:
                return [f"{a['name']} is {a['state']}" + (f": {need_text(a)}" if need_text(a) else "") for a in found]
            if deadline is not None and time.monotonic() >= deadline:
                now = ", ".join(f"{a['name']} {a['state']}" for a in agents if agent is None or a["name"] == agent)
                raise WaitTimedOut(f"not {until} after {timeout:g}s ({now})")
            time.sleep(POLL_S)
