"""Delivery to a running agent (the script agent, in real tmux): wake when idle, inject when busy,
busy/idle in status, one nudge per burst and none while busy."""

from __future__ import annotations

from pathlib import Path

from podctl.hooks.script import ADAPTER

from ..helpers import agent_state, pane_text, podctl, wait_until, write_pod

POD = """\
name: {name}
agents:
  worker:
    cli: script
    role: works
    script:
      replies: "done: {{text}}"
      steps:
{steps}
  boss:
    cli: script
"""


def up(tmp_path: Path, pods, name: str, steps: str = "        - say: ready") -> None:
    pods.up(write_pod(tmp_path / name, POD.format(name=name, steps=steps)))
    wait_until(lambda: agent_state(name, "boss") == "idle", timeout=40, message="boss idle")


def test_message_while_busy_is_injected_at_the_next_hook_once_and_status_shows_busy_then_idle(tmp_path: Path, pods) -> None:
    up(tmp_path, pods, "busy", steps="        - sleep: 6\n        - tell: {to: boss, text: after the sleep}")
    wait_until(lambda: agent_state("busy", "worker") == "busy", timeout=40, message="worker busy during its turn")
    podctl("send", "busy", "--to", "worker", "--ask", "sent while busy")
    text = wait_until(
        lambda: (t := pane_text("busy", "worker")) and "injected at AfterTool" in t and t, timeout=40,
        message="the ask to be injected after the next tool call",
    )
    after_tool = text.split("→ tell boss: after the sleep")[1]
    assert "sent while busy" in after_tool.split("injected at AfterTool")[1]
    wait_until(lambda: agent_state("busy", "worker") == "idle", timeout=40, message="worker idle after its turn")
    final = pane_text("busy", "worker")
    assert final.count("[podctl ask #") == 1, "injected exactly once"
    assert "replied to #" in final
    assert ADAPTER.wake_text not in final, "no nudge was typed while it was busy"
    assert "done: sent while busy" in podctl("tail", "busy").stdout


def test_idle_agent_is_woken_once_per_burst(tmp_path: Path, pods, podctl_home: Path) -> None:
    from podctl.broker import wire

    up(tmp_path, pods, "burst")
    wait_until(lambda: agent_state("burst", "worker") == "idle", timeout=40, message="worker idle")
    state = podctl_home / "burst"
    with wire.Client(state / "broker.sock", "user", (state / "agents/user/token").read_text().strip()) as user:
        for n in range(5):
            user.call("tell", to="worker", text=f"urgent {n}", urgent=True)
    wait_until(lambda: "urgent 4" in pane_text("burst", "worker"), timeout=40, message="the burst to be handled")
    wait_until(lambda: agent_state("burst", "worker") == "idle", timeout=40, message="worker idle again")
    text = pane_text("burst", "worker")
    assert text.count(ADAPTER.wake_text) == 1 and text.count("(woken)") == 1, text
    status = podctl("status", "burst").stdout
    assert "last wake: sent" in status


def test_a_wake_that_cannot_reach_a_pane_is_reported(tmp_path: Path, pods) -> None:
    up(tmp_path, pods, "nowake")
    wait_until(lambda: agent_state("nowake", "worker") == "idle", timeout=40, message="worker idle")
    from ..helpers import tmux_out

    tmux_out("kill-window", "-t", "=nowake:=worker")
    podctl("send", "nowake", "--to", "worker", "--ask", "anyone?")
    wait_until(lambda: "skipped: pane missing" in podctl("status", "nowake").stdout, timeout=40,
               message="the failed wake in status")
