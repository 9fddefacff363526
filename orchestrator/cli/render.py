"""How `status` and `ls` print, shared by the typer commands and the fast path (no typer here)."""

from __future__ import annotations

import json
from typing import Any


def pods_rows() -> list[dict[str, Any]]:
    from podctl.orchestrator import pod as pods
    from podctl.orchestrator import podref

    rows = []
    for name in pods.known_pods():
        paths = pods.paths_of(name)
        rows.append({
            "pod": name, "state": "up" if pods.running(paths) else "down",
            "pod_file": str(podref.recorded_file(paths) or ""),
        })
    return rows


def pods_lines(as_json: bool) -> list[str]:
    rows = pods_rows()
    if as_json:
        return [json.dumps(rows)]
    return [f"{row['pod']:<24} {row['state']:<5} {row['pod_file']}" for row in rows]


def status_lines(pod: str, as_json: bool) -> list[str]:
    from podctl.orchestrator import pod as pods

    data = pods.status(pods.find(pod))
    if as_json:
        return [json.dumps(data, indent=2)]
    lines = [f"pod {data['pod']}: broker {data['broker']}, supervisor {data['supervisor']}, tmux session {data['session']}"]
    if data["broker"] != "running":
        lines.append(f"  the pod is down: `podctl resume {data['pod']}` (or `podctl up {data['pod_file'] or 'POD_FILE'}`)"
                     " brings it back; what follows is from its store")
    for agent in data["agents"]:
        lines += _agent_lines(agent)
    if data.get("usage"):
        lines.append(f"  usage of the pod: {usage_text(data['usage'])}{budget_text(data.get('budget'))}")
    return lines


def usage_text(usage: dict[str, Any]) -> str:
    """`750,015 tokens (600,010 in, 0 cached, 150,005 out), $0.90` with what its cost cannot count."""
    tokens = usage["input_tokens"] + usage["cached_input_tokens"] + usage["output_tokens"]
    cost = usage.get("cost_usd")
    if cost is not None:
        priced = f"${cost:.2f}"
    else:
        priced = f"${usage['cost_usd_known_part']:.2f} + unknown ({', '.join(usage['unpriced_models'])}: no price)"
    return (f"{tokens:,} tokens ({usage['input_tokens']:,} in, {usage['cached_input_tokens']:,} cached,"
            f" {usage['output_tokens']:,} out), {priced}")


def budget_text(budget: dict[str, Any] | None) -> str:
    if not budget:
        return ""
    parts = []
    if budget.get("budget_usd") is not None:
        parts.append(f"${budget['budget_usd']:.2f} for the pod")
    if budget.get("budget_tokens_per_agent") is not None:
        parts.append(f"{budget['budget_tokens_per_agent']:,} tokens per agent")
    return f"; budget {', '.join(parts)}" if parts else ""


def _agent_lines(agent: dict[str, Any]) -> list[str]:
    extra = []
    if agent.get("unread"):
        extra.append(f"{agent['unread']} unread")
    if agent.get("last_wake"):
        extra.append(f"last wake: {agent['last_wake']}")
    if agent.get("handed_off_to"):
        extra.append(f"handed off to {agent['handed_off_to']}")
    if agent.get("exit_status") is not None:
        extra.append(f"exited {agent['exit_status']}")
    if agent.get("over_budget"):
        extra.append(f"over budget: {agent['over_budget']}, not woken")
    tail = f"  ({'; '.join(extra)})" if extra else ""
    lines = [f"  {agent['name']:<16} {agent.get('cli', '?'):<7} {agent['state']:<8}{tail}"]
    if agent.get("usage"):
        lines.append(f"      usage {usage_text(agent['usage'])}")
    tree = agent.get("worktree")
    if tree:
        lines.append(f"      worktree {tree['path']} on {tree['branch']}, {worktree_changes(tree)}")
    reason = agent.get("reason")
    if reason:
        lines += [f"      | {line}" for line in reason["last_lines"]]
        lines.append(f"      more: {reason['more']}")
    return lines


def worktree_changes(tree: dict[str, Any]) -> str:
    """`3 files changed` for a worktree in `status` (or why it could not be read)."""
    count = tree.get("changed_files")
    if count is None:
        return f"changes unknown: {tree.get('problem', 'git failed')}"
    return f"{count} file{'s' if count != 1 else ''} changed"
