"""The live view in a real pod: `podctl up` runs it in the `podctl` window, read here through tmux
and driven with keys as a person would; `transcript: tail` swaps it for the plain stream live."""

from __future__ import annotations

import os
from pathlib import Path

from ..conftest import Pods
from ..helpers import pane_text, tmux_out, wait_until, window_pids, write_pod

POD = """\
name: {name}
agents:
  writer: {{cli: script, role: writes}}
  reviewer: {{cli: script, role: reviews}}
"""


def keys(pod: str, *sent: str) -> None:
    tmux_out("send-keys", "-t", f"={pod}:=podctl", *sent)


def test_up_runs_the_live_view_and_its_keys_restart_and_jump(tmp_path: Path, pods: Pods) -> None:
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


def test_transcript_tail_swaps_the_view_for_the_plain_stream_without_touching_agents(tmp_path: Path, pods: Pods) -> None:
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


def test_a_view_left_open_follows_a_broker_restart_and_a_down_and_up(tmp_path: Path, pods: Pods) -> None:
    """A restarted broker is `reconnecting`, then `reconnected` for a moment; after `podctl down` the
    agents are stopped (as `status` says), and after `up` they start again with a fresh clock."""
    import asyncio
    import signal
    from typing import Any

    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.processes import broker_pid
    from podctl.orchestrator.ui.app import PodApp

    from ..helpers import podctl
    from .test_ui import cell, until, widget_text

    pod_file = write_pod(tmp_path / "across", POD.format(name="across"))
    pods.up(pod_file)

    async def scenario(app: PodApp, pilot: Any) -> None:
        await until(pilot, lambda: app.view.connection == "live" and cell(app, "writer", "state"), "the agents", timeout=30)
        pid = broker_pid(PodPaths.of("across"))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await until(pilot, lambda: "reconnected: the broker is back" in widget_text(app, "#top"),
                    "the broker restarted by the supervisor", timeout=30)
        await until(pilot, lambda: "reconnected" not in widget_text(app, "#top"), "the note gone", timeout=10)
        await asyncio.to_thread(podctl, "down", "across")
        await until(pilot, lambda: "is down" in widget_text(app, "#top"), "the pod down", timeout=30)
        assert cell(app, "writer", "state") == "stopped" and cell(app, "reviewer", "state") == "stopped"
        await asyncio.to_thread(podctl, "up", str(pod_file), "--no-attach")
        await until(pilot, lambda: app.view.connection == "live", "the pod up again", timeout=30)
        await until(pilot, lambda: cell(app, "writer", "state").split()[:1] in (["starting"], ["idle"]),
                    "the writer started again", timeout=30)
        state, clock = cell(app, "writer", "state").split()[:2]
        assert clock.endswith("s"), f"a fresh clock after up, not the old one: {state} {clock}"

    app_pod = "across"

    async def main() -> None:
        app = PodApp(PodPaths.of(app_pod))
        async with app.run_test(size=(80, 24)) as pilot:
            await scenario(app, pilot)

    asyncio.run(asyncio.wait_for(main(), 240))


def test_the_live_view_puts_an_agent_that_needs_you_first_and_its_keys_answer_it(tmp_path: Path, pods: Pods) -> None:
    """A blocked agent is listed first, its request shown in full above the table; `n` asks the
    reason and denies, `y` allows the next one, with no attaching."""
    work = tmp_path / "lv"
    text = ("name: lv\nagents:\n  aa: {cli: script}\n  writer:\n    cli: script\n    script:\n      steps:\n"
            "        - permission: {tool: Bash, detail: \"rm -rf build\"}\n        - write: {path: gone.txt, text: x}\n"
            "        - permission: {tool: Bash, detail: \"touch build/x\"}\n        - write: {path: made.txt, text: x}\n")
    pods.up(write_pod(work, text))
    def table_of(screen: str) -> list[str]:
        return [line for line in screen.splitlines() if line.strip().startswith(("writer", "aa"))]

    screen = wait_until(lambda: (t := pane_text("lv", "podctl")) and "needs you" in t and len(table_of(t)) == 2 and t,
                        timeout=30, message="the request and both agents in the live view")
    assert "writer needs you: permission" in screen and "Bash: rm -rf build" in screen and "1 NEED YOU" in screen
    table = table_of(screen)
    assert table[0].strip().startswith("writer") and "blocked" in table[0], "the blocked agent is listed first"
    keys("lv", "n")
    wait_until(lambda: "Deny writer: Bash rm -rf build" in pane_text("lv", "podctl"), timeout=10, message="the reason asked")
    keys("lv", "-l", "not the whole folder")
    keys("lv", "Enter")
    wait_until(lambda: "Bash: touch build/x" in pane_text("lv", "podctl"), timeout=20, message="the next request")
    keys("lv", "y")
    wait_until(lambda: (work / "made.txt").exists(), timeout=20, message="the allowed step to run")
    assert not (work / "gone.txt").exists()
    wait_until(lambda: "not the whole folder" in pane_text("lv", "writer"), timeout=10, message="the reason told")
