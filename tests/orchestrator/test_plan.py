"""The planner is pure: desired state + observed state -> steps. One case per kind of change."""

from __future__ import annotations

from typing import Any

from podctl.orchestrator.plan import Observed, Step, plan
from podctl.orchestrator.tmux import WindowState


def window(name: str, fp: str) -> WindowState:
    return WindowState(name=name, dead=False, exit_status=None, pid=1, fingerprint=fp)


RUNNING = Observed(
    broker=True, session=True,
    windows={"podctl": window("podctl", ""), "writer": window("writer", "f1"), "reviewer": window("reviewer", "f2")},
    states={"writer": "idle", "reviewer": "busy"},
    roles={"writer": "writes", "reviewer": "reviews"},
)


def describe(steps: list[Step]) -> list[str]:
    return [s.describe() for s in steps]


def test_nothing_running_starts_everything() -> None:
    steps = plan({"writer": ("f1", "writes")}, Observed(broker=False, session=False))
    assert describe(steps) == ["start broker", "create session", "add agent writer"]


def test_matching_pod_needs_nothing() -> None:
    assert plan({"writer": ("f1", "writes"), "reviewer": ("f2", "reviews")}, RUNNING) == []


def test_add_remove_restart_and_role_change() -> None:
    desired = {"writer": ("f1-new", "writes"), "reviewer": ("f2", "reviews harder"), "tester": ("f3", "tests")}
    assert describe(plan(desired, RUNNING)) == [
        "restart agent writer: its cli, model, args, env, workdir or script changed",
        "update role reviewer: told its new role, no restart",
        "add agent tester",
    ]
    [removal] = plan({"writer": ("f1", "writes")}, RUNNING)
    assert removal.describe("/p/pod.yaml") == ("remove agent reviewer: no longer in the pod file (waits until reviewer is"
                                               " idle; `podctl up /p/pod.yaml --force` does it now)")


def test_a_busy_agent_waits_unless_forced() -> None:
    desired = {"writer": ("f1", "writes"), "reviewer": ("f2-new", "reviews")}
    [step] = plan(desired, RUNNING)
    assert step.kind == "restart_agent" and step.waits
    assert "waits until reviewer is idle" in step.describe()
    [forced] = plan(desired, RUNNING, force=True)
    assert not forced.waits


def test_dead_broker_is_restarted_without_touching_agents() -> None:
    observed = Observed(broker=False, session=True, windows=RUNNING.windows)
    assert describe(plan({"writer": ("f1", "writes"), "reviewer": ("f2", "reviews")}, observed)) == ["start broker"]


def test_the_podctl_window_runs_the_view_the_pod_file_asks_for() -> None:
    """`transcript: ui | tail`: a window running something else, or closed, is (re)opened; an old
    session's window (no mark) gets the view; the right one is left alone."""
    desired = {"writer": ("f1", "writes"), "reviewer": ("f2", "reviews")}
    assert describe(plan(desired, RUNNING, view="ui")) == ["open view: transcript: ui"]
    showing = Observed(**{**RUNNING.__dict__, "windows": {**RUNNING.windows, "podctl": window("podctl", "ui")}})
    assert plan(desired, showing, view="ui") == []
    assert describe(plan(desired, showing, view="tail")) == ["open view: transcript: tail"]
    closed = Observed(**{**RUNNING.__dict__, "windows": {n: w for n, w in RUNNING.windows.items() if n != "podctl"}})
    assert describe(plan(desired, closed, view="ui")) == ["open view: the podctl window was closed; it runs ui again"]
    assert [s.kind for s in plan(desired, Observed(broker=True, session=False), view="ui")] == [
        "create_session", "add_agent", "add_agent"]


def test_changes_the_broker_applies_without_a_step_are_named() -> None:
    from podctl.orchestrator.plan import settings_changes
    from podctl.pods.spec import PodSpec

    def spec(extra: dict[str, Any]) -> PodSpec:
        return PodSpec.model_validate({"name": "p", "agents": {"a": {"cli": "script"}, "b": {"cli": "script"}}, **extra})

    old = spec({"limits": {"budget_usd": 0.001}, "routes": [{"name": "r", "to": ["a"]}],
                "pricing": {"m": {"input": 1.0, "cached_input": 0.1, "output": 2.0}}})
    new = spec({"limits": {"budget_usd": 2.5, "budget_tokens_per_agent": 1000}, "routes": [{"name": "r", "to": ["b"]}],
                "rules": [{"name": "x", "on": "turn_end", "ask": "r"}]})
    assert settings_changes(old, new) == [
        "limits.budget_usd: $0.001 -> $2.50", "limits.budget_tokens_per_agent: none -> 1,000", "pricing m: removed",
        "route r: to changed", "rule x: added",
    ]
    assert settings_changes(new, new) == []
