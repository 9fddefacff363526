"""Desired state (a pod spec) against observed state gives the steps that make them match.

Pure: no tmux, no broker, no files; `podctl plan` prints these steps and `apply` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .tmux import TRANSCRIPT_WINDOW, WindowState

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

StepKind = Literal[
    "start_broker", "create_session", "open_view", "add_agent", "restart_agent", "remove_agent", "update_role"
]


@dataclass(frozen=True)
class Observed:
    broker: bool
    session: bool
    windows: dict[str, WindowState] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    """Each registered agent's busy/idle/stopped state, from the broker."""
    roles: dict[str, str] = field(default_factory=dict)
    """Each registered agent's role, from the broker."""


@dataclass(frozen=True)
class Step:
    kind: StepKind
    agent: str | None = None
    reason: str = ""
    waits: bool = False
    """True when the step must wait for the agent to end its turn (it is busy)."""

    def describe(self, pod_file: object = "POD_FILE") -> str:
        """The step in words; one that waits says the command that does it now (`pod_file`'s `up --force`)."""
        who = f" {self.agent}" if self.agent else ""
        text = f"{self.kind.replace('_', ' ')}{who}"
        if self.reason:
            text += f": {self.reason}"
        if self.waits:
            text += f" (waits until {self.agent} is idle; `podctl up {pod_file} --force` does it now)"
        return text


def _view_steps(shown: WindowState | None, view: str) -> list[Step]:
    if shown is None:
        return [Step("open_view", reason=f"the {TRANSCRIPT_WINDOW} window was closed; it runs {view} again")]
    if shown.fingerprint != view:
        return [Step("open_view", reason=f"transcript: {view}")]
    return []


def plan(
    desired: dict[str, tuple[str, str]], observed: Observed, force: bool = False, view: str | None = None
) -> list[Step]:
    """Steps from `observed` to `desired` ({agent: (fingerprint, role)}); `view` is what the pod's
    `podctl` window runs (the pod file's `transcript`), None to leave that window be."""
    steps: list[Step] = []
    if not observed.broker:
        steps.append(Step("start_broker"))
    if not observed.session:
        steps.append(Step("create_session"))
    elif view is not None:
        steps += _view_steps(observed.windows.get(TRANSCRIPT_WINDOW), view)
    windows = {n: w for n, w in observed.windows.items() if n != TRANSCRIPT_WINDOW} if observed.session else {}

    def busy(name: str) -> bool:
        return not force and observed.states.get(name) == "busy"

    for name, (fp, role) in desired.items():
        window = windows.get(name)
        if window is None:
            steps.append(Step("add_agent", name))
        elif window.fingerprint != fp:
            steps.append(Step("restart_agent", name, "its cli, model, args, env, workdir or script changed", busy(name)))
        elif name in observed.roles and observed.roles[name] != role:
            steps.append(Step("update_role", name, "told its new role, no restart"))
    for name in windows:
        if name not in desired:
            steps.append(Step("remove_agent", name, "no longer in the pod file", busy(name)))
    return steps


def config_changes(
    kind: str, desired: dict[str, dict[str, Any]], observed: dict[str, dict[str, Any]] | None
) -> list[str]:
    """What `up` changes in the broker's routes or rules (`kind`): {name: fields} against what the
    running broker has (None: no broker runs, it starts with them all)."""
    if observed is None:
        return [f"{kind} {name}: added (the broker starts with it)" for name in desired]
    changes = []
    for name, fields in desired.items():
        if name not in observed:
            changes.append(f"{kind} {name}: added")
            continue
        changed = sorted(key for key, value in fields.items() if observed[name].get(key) != value)
        if changed:
            changes.append(f"{kind} {name}: {', '.join(changed)} changed")
    changes += [f"{kind} {name}: removed" for name in observed if name not in desired]
    return changes


def settings_changes(old: PodSpec, new: PodSpec) -> list[str]:
    """What a new pod file changes that no step shows, because the broker applies it as it is handed
    the spec: limits, prices, routes and rules (`limits.budget_usd: $1.00 -> $2.00`, `route review: to changed`)."""
    changes = [
        f"limits.{name}: {_setting(name, value)} -> {_setting(name, getattr(new.limits, name))}"
        for name, value in old.limits.model_dump().items() if getattr(new.limits, name) != value
    ]
    for kind, before, after in (("pricing", old.pricing, new.pricing),
                                ("route", {r.name: r for r in old.routes}, {r.name: r for r in new.routes}),
                                ("rule", {r.name: r for r in old.rules}, {r.name: r for r in new.rules})):
        changes += config_changes(kind, {k: v.model_dump(by_alias=True) for k, v in after.items()},
                                  {k: v.model_dump(by_alias=True) for k, v in before.items()})
    return changes


def _setting(name: str, value: object) -> str:
    if value is None:
        return "none"
    if name == "budget_usd" and isinstance(value, (int, float)):
        from podctl.pods.usage import usd

        return usd(value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
