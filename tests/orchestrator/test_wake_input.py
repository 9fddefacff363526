"""A wake through an input the CLI watches (an adapter's `wake_input`): it waits for the same ready
pane as a typed wake, and then no key goes into the pane."""

from __future__ import annotations

import asyncio
import subprocess

from podctl.orchestrator import tmux_nudge

from ..helpers import pane_text, wait_until

READY = "READY>"


def start_pane(tmux_socket: str) -> None:
    """A window `a` of session `p` that shows READY> and echoes whatever is typed into it."""
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "p", "-n", "a", "-x", "80", "-y", "10",
                    f"printf '{READY}'; cat"], check=True)
    wait_until(lambda: READY in pane_text("p", "a"), timeout=10, message="the pane's prompt")


def test_a_wake_written_to_the_clis_input_types_nothing_and_one_it_cannot_write_is_typed(tmux_socket: str) -> None:
    start_pane(tmux_socket)
    written: list[str] = []

    def deliver(text: str) -> bool:
        written.append(text)
        return True

    result = asyncio.run(tmux_nudge.nudge("p", "a", "WAKE-TEXT", ready=READY, deliver=deliver))
    assert (str(result), written) == ("sent", ["WAKE-TEXT"])
    assert "WAKE-TEXT" not in pane_text("p", "a"), "nothing was typed"

    assert asyncio.run(tmux_nudge.nudge("p", "a", "TYPED-TEXT", ready=READY, deliver=lambda text: False)).outcome == "sent"
    wait_until(lambda: "TYPED-TEXT" in pane_text("p", "a"), timeout=10, message="the fallback typed into the pane")


def test_a_wake_input_waits_for_the_ready_prompt_like_typing(tmux_socket: str) -> None:
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "p", "-n", "a", "cat"], check=True)
    written: list[str] = []
    def record(text: str) -> bool:
        written.append(text)
        return True

    result = asyncio.run(tmux_nudge.nudge("p", "a", "WAKE-TEXT", ready=READY, deliver=record))
    assert str(result).startswith("skipped: the CLI is not ready") and not written
