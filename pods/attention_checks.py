"""Checks of a pod file's attention policy: `permissions`, `approvals` and `notify` (docs/attention.md).

Like checks.py they read the merged raw data, so they run when the schema found errors too, and
each looks only at values of the right type.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any, get_args

from . import clis
from .problems import suggest
from .spec import NOTIFY_FIELDS, PermissionMode

if TYPE_CHECKING:
    from .checks import Context


def check_attention(data: dict[str, Any], ctx: Context) -> None:
    _check_permissions(data, ctx)
    _check_approvals(data.get("approvals"), ctx)
    _check_notify(data.get("notify"), ctx)


def _check_permissions(data: dict[str, Any], ctx: Context) -> None:
    """A `permissions` mode and a CLI flag of the agent's own that sets one would fight: refuse it."""
    agents = data.get("agents")
    if not isinstance(agents, dict):
        return
    for name, agent in agents.items():
        if not isinstance(agent, dict) or (agent.get("permissions") or data.get("permissions")) is None:
            continue
        cli = agent.get("cli")
        if not isinstance(cli, str) or cli not in clis.names():
            continue
        adapter = clis.adapter(cli)
        mode = agent.get("permissions") or data.get("permissions")
        if mode in get_args(PermissionMode) and mode not in adapter.permission_modes:
            where = ("agents", name, "permissions") if agent.get("permissions") else ("permissions",)
            ctx.add(where, f"agent {name}: {cli} has no mode for `permissions: {mode}` (its adapter maps none):"
                           " podctl cannot hold it to it; leave `permissions` out for this agent")
            continue
        flags = adapter.permission_flags
        args = agent.get("args")
        for i, arg in enumerate(args if isinstance(args, list) else []):
            if isinstance(arg, str) and (arg in flags or arg.split("=", 1)[0] in flags):
                ctx.add(("agents", name, "args", i),
                        f"agent {name}: {arg} sets {cli}'s permission mode, and so does `permissions`: keep one")


def _check_approvals(approvals: Any, ctx: Context) -> None:
    if not isinstance(approvals, list):
        return
    for i, entry in enumerate(approvals):
        if not isinstance(entry, dict):
            continue
        base = ("approvals", i)
        whose = entry.get("agents")
        names = [n for n in whose if isinstance(n, str)] if isinstance(whose, list) else None
        for j, agent in enumerate(whose if isinstance(whose, list) else []):
            ctx.need_agent(agent, (*base, "agents", j), f"approvals[{i}]")
        to = entry.get("to")
        ctx.duration(entry.get("timeout"), (*base, "timeout"))
        if not isinstance(to, str) or to == "user":
            continue
        if to in ctx.routes:
            approvers = ctx.routes[to]
        elif ctx.agents is None or to in ctx.agents:
            approvers = [to]
        else:
            known = [*ctx.routes, *(ctx.agents or [])]
            ctx.add((*base, "to"), f"approvals[{i}] goes to {to!r}, which is not user, an agent or a route{suggest(to, known)}")
            continue
        alone = [a for a in names or [] if set(approvers) <= {a}]  # without `agents`, its own go to the person
        if alone:
            ctx.add((*base, "to"), f"approvals[{i}]: {', '.join(alone)} would approve its own requests;"
                                   " name another approver, or leave it out of `agents`")


def _check_notify(notify: Any, ctx: Context) -> None:
    if not isinstance(notify, list):
        return
    for i, entry in enumerate(notify):
        if not isinstance(entry, dict):
            continue
        base = ("notify", i)
        run, bell = entry.get("run"), entry.get("bell")
        if (run is None) == (not bell):
            ctx.add(base, f"notify[{i}] needs exactly one of `run` (a command) or `bell: true`")
        for j, arg in enumerate(run if isinstance(run, list) else []):
            if isinstance(arg, str):
                for problem in _placeholder_problems(arg):
                    ctx.add((*base, "run", j), f"notify[{i}] run: {problem}")


def _placeholder_problems(arg: str) -> list[str]:
    known = ", ".join(f"{{{f}}}" for f in NOTIFY_FIELDS)
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(arg) if name is not None]
    except ValueError as exc:
        return [f"{exc}: write a literal brace doubled, {{{{ or }}}}"]
    bad = [f for f in fields if f not in NOTIFY_FIELDS]
    return [f"unknown placeholder {{{f}}}{suggest(f, list(NOTIFY_FIELDS))} (known: {known})" for f in bad]
