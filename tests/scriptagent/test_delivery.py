"""Delivery to a running agent (the script agent, in real tmux): wake when idle, inject when busy,
busy/idle in status, one nudge per burst and none while busy."""

from __future__ import annotations

from pathlib import Path

from podctl.hooks.script import ADAPTER

from ..conftest import Pods
from ..helpers import agent_state, pane_text, podctl, status_of, transcript, wait_until, write_pod

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


def up(tmp_path: Path, pods: Pods, name: str, steps: str = "        - say: ready") -> Path:
    """Bring the pod up; returns its workdir."""
    pods.up(write_pod(tmp_path / name, POD.format(name=name, steps=steps)))
    wait_until(lambda: agent_state(name, "boss") == "idle", timeout=40, message="boss idle")
    return tmp_path / name


def settled(pod: str, agent: str = "worker") -> None:
    """Wait until the agent finished its first turn and waits for a wake."""
    wait_until(lambda: "waiting for a wake" in pane_text(pod, agent), timeout=40, message=f"{agent} to settle")


def test_message_while_busy_is_injected_at_the_next_hook_once_and_status_shows_busy_then_idle(tmp_path: Path, pods: Pods) -> None:
    workdir = up(tmp_path, pods, "busy", steps="        - wait_for: go\n        - tell: {to: boss, text: once it may go on}")
    wait_until(lambda: agent_state("busy", "worker") == "busy", timeout=40, message="worker busy during its turn")
    podctl("send", "busy", "--to", "worker", "--ask", "sent while busy")
    (workdir / "go").touch()
    text = wait_until(
        lambda: (t := pane_text("busy", "worker")) and "injected at AfterTool" in t and t, timeout=40,
        message="the ask to be injected after the next tool call",
    )
    after_tool = text.split("→ tell boss: once it may go on")[1]
    assert "sent while busy" in after_tool.split("injected at AfterTool")[1]
    wait_until(lambda: agent_state("busy", "worker") == "idle", timeout=40, message="worker idle after its turn")
    final = pane_text("busy", "worker")
    assert final.count("[podctl ask #") == 1, "injected exactly once"
    assert "replied to #" in final
    assert ADAPTER.wake_text not in final, "no nudge was typed while it was busy"
    assert "done: sent while busy" in podctl("tail", "busy").stdout


def test_idle_agent_is_woken_once_per_burst(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    from podctl.broker import wire

    up(tmp_path, pods, "burst")
    settled("burst")
    state = podctl_home / "burst"
    with wire.Client(state / "broker.sock", "user", (state / "agents/user/token").read_text().strip()) as user:
        for n in range(5):
            user.call("tell", to="worker", text=f"urgent {n}", urgent=True)
    wait_until(lambda: "urgent 4" in pane_text("burst", "worker"), timeout=40, message="the burst to be handled")
    wait_until(lambda: agent_state("burst", "worker") == "idle", timeout=40, message="worker idle again")
    text = pane_text("burst", "worker")
    assert text.count(ADAPTER.wake_text) == 1 and text.count("(woken)") == 1, text
    wait_until(lambda: next(a for a in status_of("burst")["agents"] if a["name"] == "worker")["last_wake"] == "woken",
               timeout=20, message="the wake recorded as woken")


def test_no_nudge_while_a_person_scrolls_the_pane_then_it_is_retried(tmp_path: Path, pods: Pods) -> None:
    from ..helpers import tmux_out

    up(tmp_path, pods, "scroll")
    settled("scroll")
    tmux_out("copy-mode", "-t", "=scroll:=worker")
    podctl("send", "scroll", "--to", "worker", "--ask", "are you there?")
    wait_until(lambda: "skipped: the pane is in copy mode" in podctl("status", "scroll").stdout, timeout=40,
               message="the skipped wake in status")
    assert "(woken)" not in pane_text("scroll", "worker")
    tmux_out("send-keys", "-t", "=scroll:=worker", "-X", "cancel")
    wait_until(lambda: "done: are you there?" in transcript("scroll"), timeout=40,
               message="the retried wake to get the ask answered")


def test_an_agent_whose_window_is_gone_is_stopped_and_messages_wait(tmp_path: Path, pods: Pods) -> None:
    from ..helpers import tmux_out

    up(tmp_path, pods, "gone")
    settled("gone")
    tmux_out("kill-window", "-t", "=gone:=worker")
    wait_until(lambda: "worker lost its window" in transcript("gone"), timeout=40,
               message="the supervisor to notice")
    out = podctl("send", "gone", "--to", "worker", "--ask", "anyone?").stdout
    assert "worker (stopped)" in out


def test_message_text_cannot_drive_the_agent_pane(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    """Escape sequences in a message are shown as text in the script agent's pane, not obeyed."""
    from podctl.broker import wire

    from ..helpers import tmux_out

    up(tmp_path, pods, "esc")
    settled("esc")
    state = podctl_home / "esc"
    with wire.Client(state / "broker.sock", "user", (state / "agents/user/token").read_text().strip()) as user:
        user.call("ask", to="worker", text="hi\x1b]2;pwned\x07 there\r\x1b[2Kforged\x9b1m")
    text = wait_until(lambda: (t := pane_text("esc", "worker")) and "replied to #" in t and t, timeout=40,
                      message="the ask to be answered")
    shown = "hi\\x1b]2;pwned\\x07 there\\x0d\\x1b[2Kforged\\x9b1m"
    assert text.count(shown) >= 3, f"injected, handled and replied lines show the escapes:\n{text}"
    assert tmux_out("display-message", "-p", "-t", "=esc:=worker", "#{pane_title}").strip() != "pwned"
