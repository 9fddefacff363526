"""How `status` and `ls` print, shared by the typer commands and the fast path (no typer here).

The status table is `STATUS_COLUMNS` over the row dicts of `agent_row`: a new column is one
`Column` and one key of the row. `status --json` only ever gains fields.
"""

from __future__ import annotations

import json
import time
from typing import Any

from podctl.orchestrator.attention import how_to_answer, need_text, needing
from podctl.pods.usage import cost_label, tokens_label, total_of, usd

from .table import Column, colour_wanted, render


def pods_rows() -> list[dict[str, Any]]:
    from podctl.orchestrator import pod as pods
    from podctl.orchestrator import podref

    rows = []
    for name in pods.known_pods():
        paths = pods.paths_of(name)
        up = pods.running(paths)
        rows.append({
            "pod": name, "state": pods.state_word(pods.parts(paths)), "needs_you": needs_you(paths) if up else None,
            "pod_file": str(podref.recorded_file(paths) or ""),
        })
    return rows


def needs_you(paths: Any) -> int | None:
    """How many of a running pod's agents are blocked or failed, from its store (no broker call)."""
    from podctl.broker.queries import StoreError
    from podctl.broker.readonly import ReadOnlyStore

    try:
        with ReadOnlyStore(paths.db) as store:
            return len(store.attention())
    except (StoreError, OSError):
        return None


def _state_colour(text: str) -> str | None:
    colours = {"busy": "yellow", "idle": "green", "starting": "cyan", "stopped": "red", "up": "green", "down": "dim",
               "partial:": "yellow", "leaving": "yellow", "removed": "dim", "blocked": "magenta", "failed": "magenta"}
    return colours.get(text.split(" ", maxsplit=1)[0])


POD_COLUMNS = [
    Column("POD", "pod"), Column("STATE", "state", _state_colour),
    Column("NEEDS YOU", "needs_you", lambda text: "magenta" if text not in ("0", "-") else None, right=True),
    Column("POD FILE", "pod_file"),
]


def pods_lines(as_json: bool, colour: bool | None = None) -> list[str]:
    rows = pods_rows()
    if as_json:
        return [json.dumps(rows)]
    if not rows:
        from podctl.broker.paths import state_root

        return [f"no pods yet (in {state_root()}): write a pod file with `podctl init`, then `podctl up`"
                " starts it (or try the demo: scripts/demo)"]
    return render(POD_COLUMNS, rows, colour_wanted() if colour is None else colour)


# -- status -------------------------------------------------------------------------------------


def ago(seconds: float) -> str:
    """A duration as people say it: 40s, 2m, 3h, 2d."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock(ts: float, now: float) -> str:
    """A time of day (14:02), with the date when it is not today."""
    when, today = time.localtime(ts), time.localtime(now)
    return time.strftime("%H:%M" if when[:3] == today[:3] else "%b %d %H:%M", when)


def shown_state(agent: dict[str, Any]) -> str:
    """busy, idle, stopped, or `starting`: idle, but its CLI was just started and is not up yet."""
    return "starting" if agent["state"] == "idle" and agent.get("starting") else str(agent["state"])


def agent_row(agent: dict[str, Any], now: float) -> dict[str, Any]:
    """One agent's cells of the status table (the keys of STATUS_COLUMNS)."""
    state = shown_state(agent)
    since = (agent.get(state) or {}).get("since") if state in ("blocked", "failed") else agent.get("state_ts")
    if state in ("busy", "idle", "starting", "blocked", "failed") and since:
        state = f"{state} for {ago(now - since)}"
    if agent.get("leaving"):
        state = f"leaving ({state})"
    if agent.get("remote"):
        reported = agent.get("reported_at")
        state += f" (reported {ago(now - reported)} ago)" if reported else " (never reported)"
    wake = agent.get("last_wake")
    wake_ts = agent.get("last_wake_ts")
    notes = []
    if agent.get("blocked") or agent.get("failed"):
        notes.append(need_text(agent))
    if agent.get("handed_off_to"):
        notes.append(f"handed off to {agent['handed_off_to']}")
    if agent["state"] == "stopped" and agent.get("stopped_reason"):
        notes.append(agent["stopped_reason"])
    if agent.get("leaving"):
        notes.append("removed from the pod file: it goes when its turn ends")
    if agent["state"] == "removed":
        notes.append("removed from the pod file; its worktree is kept")
    if agent.get("over_budget"):
        notes.append(f"over budget ({agent['over_budget']}): not woken")
    return {
        "agent": agent["name"], "site": agent.get("site") or "-", "cli": agent.get("cli", "?"), "state": state,
        "unread": agent.get("unread", 0),
        "last_wake": f"{clock(wake_ts, now)}, {wake}" if wake and wake_ts else wake,
        "tokens": tokens_label(agent.get("usage")), "cost": cost_label(agent.get("usage")),
        "note": "; ".join(notes),
    }


STATUS_COLUMNS = [
    Column("AGENT", "agent"),
    Column("SITE", "site"),
    Column("CLI", "cli"),
    Column("STATE", "state", _state_colour),
    Column("UNREAD", "unread", lambda text: "cyan" if text not in ("0", "-") else None, right=True),
    Column("LAST WAKE", "last_wake"),
    Column("TOKENS", "tokens", right=True),
    Column("COST", "cost", right=True),
    Column("NOTE", "note"),
]


def status_lines(pod: str, as_json: bool, colour: bool | None = None) -> list[str]:
    from podctl.orchestrator import pod as pods

    data = pods.status(pods.find(pod))
    if as_json:
        return [json.dumps(data, indent=2)]
    lines = [f"pod {data['pod']}: broker {data['broker']}, supervisor {data['supervisor']}, tmux session {data['session']}"]
    if data["broker"] != "running":
        lines.append(f"  the pod is down: `podctl resume {data['pod']}` (or `podctl up {data['pod_file'] or 'POD_FILE'}`)"
                     " brings it back; what follows is from its store")
    problem = data.get("pod_file_problem")
    if problem:
        first, *rest = problem.splitlines()
        lines.append(f"  the pod no longer follows its pod file: {first}")
        lines += [f"      {line}" for line in rest]
    now = time.time()
    if data["broker"] == "running":
        lines += needs_you_lines(data["pod"], data["agents"], now)
    if data["agents"]:
        columns = STATUS_COLUMNS if any(a.get("site") for a in data["agents"]) else [
            c for c in STATUS_COLUMNS if c.key != "site"]
        lines += render(columns, [agent_row(a, now) for a in data["agents"]],
                        colour_wanted() if colour is None else colour, indent="  ")
    for agent in data["agents"]:
        tree = agent.get("worktree")
        if tree:
            lines.append(f"  {agent['name']} works in its worktree {tree['path']} on {tree['branch']},"
                         f" {worktree_changes(tree)}")
        kept = agent.get("kept_worktree")
        if kept:
            now_in = f"works in {agent['workdir']}" if agent.get("workdir") else "was removed from the pod"
            lines.append(f"  {agent['name']} {now_in}; its former worktree {kept['path']} ({kept['branch']},"
                         f" {worktree_changes(kept)}) is kept: merge what you want (`git merge {kept['branch']}` in"
                         f" {kept['repo']}), then `{kept['remove']}`")
        reason = agent.get("reason")
        if reason:
            lines.append(f"  {agent['name']} printed before it stopped:")
            lines += [f"      | {line}" for line in reason["last_lines"]]
            lines.append(f"      more: {reason['more']}")
    if data.get("usage"):
        lines.append(f"  usage of the pod: {usage_text(data['usage'])}{budget_text(data.get('budget'))}")
    if data.get("sites"):
        lines += [f"  {line}" for line in site_lines(data["sites"], now)]
    return lines


def site_lines(sites: dict[str, Any], now: float | None = None) -> list[str]:
    """This machine's site, its link to NATS, and each other site's last report (docs/sites.md)."""
    now = now or time.time()
    link = sites.get("link") or {}
    since = f" for {ago(now - link['since'])}" if link.get("since") else ""
    lines = [f"site {sites['here']}: bridge {'up' if link.get('up') else 'down'}{since} ({link.get('detail', '?')})"]
    for site in sites.get("sites", []):
        if site.get("here"):
            continue
        reported = site.get("reported_at")
        heard = f"reported {ago(now - reported)} ago" if reported else "not heard from yet"
        refused = f", {site['refused']} refused" if site.get("refused") else ""
        lines.append(f"site {site['name']}: {heard}{refused}")
    return lines


def needs_you_lines(pod: str, agents: list[dict[str, Any]], now: float) -> list[str]:
    """The `NEEDS YOU` lines at the top of `status`: each blocked or failed agent, what holds it, and
    what the person does about it."""
    lines: list[str] = []
    for agent in needing(agents):
        since = (agent.get(agent["state"]) or {}).get("since")
        label = "NEEDS YOU" if not lines else ""
        lines.append(f"{label:<9}  {agent['name']}: {need_text(agent)}" + (f" ({ago(now - since)})" if since else ""))
        lines.append(f"{'':<9}    {how_to_answer(pod, agent)}")
    return lines


def worktree_changes(tree: dict[str, Any]) -> str:
    """`3 files changed, 1 uncommitted` for a worktree in `status` (or why it could not be read)."""
    count = tree.get("changed_files")
    if count is None:
        return f"changes unknown: {tree.get('problem', 'git failed')}"
    uncommitted = tree.get("uncommitted")
    return f"{count} file{'s' if count != 1 else ''} changed" + (f", {uncommitted} uncommitted" if uncommitted else "")



def usage_text(usage: dict[str, Any]) -> str:
    """`750,015 tokens (600,010 in, 0 cached, 150,005 out), $0.90` with what its cost cannot count."""
    tokens = total_of(usage)
    cost = usage.get("cost_usd")
    if cost is not None:
        priced = usd(cost)
    else:
        priced = f"{usd(usage['cost_usd_known_part'])} + unknown ({', '.join(usage['unpriced_models'])}: no price)"
    return (f"{tokens:,} tokens ({usage['input_tokens']:,} in, {usage['cached_input_tokens']:,} cached,"
            f" {usage['output_tokens']:,} out), {priced}")


def budget_text(budget: dict[str, Any] | None) -> str:
    if not budget:
        return ""
    parts = []
    if budget.get("budget_usd") is not None:
        parts.append(f"{usd(budget['budget_usd'])} for the pod")
    if budget.get("budget_tokens_per_agent") is not None:
        parts.append(f"{budget['budget_tokens_per_agent']:,} tokens per agent")
    return f"; budget {', '.join(parts)}" if parts else ""
