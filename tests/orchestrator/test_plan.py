"""The planner is pure: desired state + observed state -> steps. One case per kind of change."""

from __future__ import annotations

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
    assert describe(plan({"writer": ("f1", "writes")}, RUNNING)) == [
        "remove agent reviewer: no longer in the pod file (waits until reviewer is idle; --force to do it now)"
    ]


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
