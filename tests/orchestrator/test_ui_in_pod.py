"""The live view in a real pod: `podctl up` runs it in the `podctl` window, read here through tmux
and driven with keys as a person would; `transcript: tail` swaps it for the plain stream live."""

from __future__ import annotations

from pathlib import Path

from ..helpers import pane_text, tmux_out, wait_until, window_pids, write_pod

POD = """\
name: {name}
agents:
  writer: {{cli: script, role: writes}}
  reviewer: {{cli: script, role: reviews}}
"""


def keys(pod: str, *sent: str) -> None:
    tmux_out("send-keys", "-t", f"={pod}:=podctl", *sent)


def test_up_runs_the_live_view_and_its_keys_restart_and_jump(tmp_path: Path, pods) -> None:
    pods.up(write_pod(tmp_path / "view", POD.format(name="view")))
    screen = wait_until(
        lambda: (text := pane_text("view", "podctl")) and " live " in text and "reviewer" in text and text,
        timeout=30, message="the live view in the podctl window",
    )
    assert "agent" in screen and "state" in screen and "s send" in screen and "q quit" in screen
    assert "podctl: podctl up:" in screen, "the history shows"
    writer = window_pids("view")["writer"]
    keys("view", "r")
    wait_until(lambda: "Restart writer?" in pane_text("view", "podctl"), timeout=10, message="the confirmation")
    keys("view", "y")
    wait_until(lambda: window_pids("view")["writer"] != writer, timeout=30, message="writer restarted")
    wait_until(lambda: "restarted writer (podctl restart)" in pane_text("view", "podctl"), timeout=30,
               message="the restart in the conversation")
    keys("view", "Down", "Enter")
    wait_until(lambda: tmux_out("display-message", "-p", "-t", "=view:", "#{window_name}").strip() == "reviewer",
               timeout=10, message="Enter to select the reviewer's window")


def test_transcript_tail_swaps_the_view_for_the_plain_stream_without_touching_agents(tmp_path: Path, pods) -> None:
    pod_file = write_pod(tmp_path / "swap", POD.format(name="swap"))
    pods.up(pod_file)
    wait_until(lambda: " live " in pane_text("swap", "podctl"), timeout=30, message="the live view")
    agents = {k: v for k, v in window_pids("swap").items() if k != "podctl"}
    pod_file.write_text(pod_file.read_text() + "transcript: tail\n")
    wait_until(lambda: tmux_out("show-options", "-w", "-v", "-t", "=swap:=podctl", "@podctl_fp").strip() == "tail",
               timeout=30, message="the window to run the plain stream")
    wait_until(lambda: "podctl up:" in pane_text("swap", "podctl") and " live " not in pane_text("swap", "podctl"),
               timeout=30, message="the plain transcript")
    assert {k: v for k, v in window_pids("swap").items() if k != "podctl"} == agents, "no agent restarted"
