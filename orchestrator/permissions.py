"""What the pod file's `permissions` and `approvals` mean for each agent's CLI, in words: the notes
`podctl validate` prints (each CLI's own default where the file says nothing, a mode a CLI can only
approximate by asking more, approvals a CLI cannot take)."""

from __future__ import annotations

from podctl.hooks.adapter import PermissionMode, get_adapter
from podctl.pods.spec import PodSpec


def notes(spec: PodSpec) -> list[str]:
    out: list[str] = []
    for name, agent in spec.agents.items():
        adapter = get_adapter(agent.cli)
        modes: dict[str, PermissionMode] = dict(adapter.permission_modes)
        mode = spec.agent_permissions(name)
        default = modes.get("default")
        if mode is None and (default is None or not default.quiet):
            said = default.says if default is not None else "its CLI's own default"
            out.append(f"{name} ({agent.cli}): no `permissions`, so {said}")
        elif mode is not None and mode in modes and modes[mode].narrower:
            out.append(f"{name} ({agent.cli}): permissions {mode}: {modes[mode].says}")
        approval = spec.approval_for(name)
        answers = adapter.attention.get("permission", "")
        if approval is not None and approval.to != "user" and "answered by podctl" not in answers:
            how = answers or "its CLI reports none"
            out.append(f"{name} ({agent.cli}): approvals to {approval.to} cannot answer its requests ({how});"
                       " they wait in its pane")
    return out


def modes_table() -> list[tuple[str, str, str, str, str]]:
    """(cli, default, ask, edits, full) in words, for every registered CLI (docs, doctor)."""
    from podctl.pods import clis

    rows = []
    for cli in clis.names():
        modes: dict[str, PermissionMode] = dict(get_adapter(cli).permission_modes)
        cells = [modes[m].says if m in modes else "-" for m in ("default", "ask", "edits", "full")]
        rows.append((cli, cells[0], cells[1], cells[2], cells[3]))
    return rows
