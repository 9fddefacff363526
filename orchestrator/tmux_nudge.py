"""The broker's view of the panes: the wake nudge, and the screen text of pattern rules.

Runs inside the broker (asyncio subprocesses of `tmux`, no libtmux calls, every one with a
timeout), on the pod's tmux server (`tmux_names.socket_name()`) and its targets (`tmux_names.target()`).

The nudge types an adapter's fixed wake text into an idle agent's pane, then Enter, or hands it
to an input the CLI watches when its adapter has one. Never message content: the text is the
adapter's constant. Text and Enter go in two `send-keys` calls
with a pause between, because several CLIs treat a pasted burst ending in Enter as a newline,
not a submit. It is pane-state aware: it does nothing (and says why) when the pane is gone or
dead, in copy mode, still changing on screen (the CLI is rendering), or when a person pressed a
key in that session within the last seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from podctl.broker.ports import SENT, Wake, skipped

from .tmux_names import socket_name, target

SUBMIT_PAUSE_S = 0.3
RENDER_PROBE_S = 0.08
TYPING_QUIET_S = 2.0
TMUX_TIMEOUT_S = 5.0
PANE_LINES = 60


class TmuxFailed(RuntimeError):
    pass


async def tmux(*args: str) -> str:
    sock = socket_name()
    proc = await asyncio.create_subprocess_exec(
        "tmux", *(["-L", sock] if sock else []), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=TMUX_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TmuxFailed(f"tmux {args[0]} timed out") from None
    if proc.returncode != 0:
        raise TmuxFailed(err.decode(errors="replace").strip() or f"tmux {args[0]} failed")
    return out.decode(errors="replace")


async def capture(pod: str, agent: str) -> str:
    """The last lines of the agent's screen, joined where the terminal wrapped them ("" if none)."""
    try:
        return await tmux("capture-pane", "-p", "-J", "-S", f"-{PANE_LINES}", "-t", target(pod, agent))
    except (TmuxFailed, OSError):
        return ""


async def pane_state(pane: str, ready: str | None = None, blocked: tuple[str, ...] = ()) -> str | None:
    """None if the pane can be nudged now, else the reason it cannot. `ready`: text the CLI shows
    once it takes input (keys sent before are lost); `blocked`: texts of dialogs Enter would answer."""
    try:
        info = await tmux("display-message", "-p", "-t", pane, "#{pane_in_mode} #{pane_dead} #{session_name}")
    except TmuxFailed as exc:
        return f"pane missing ({exc})"
    in_mode, dead, session = ([*info.split(), "", "", ""])[:3]
    if dead == "1":
        return "the CLI in the pane has exited"
    if in_mode == "1":
        return "the pane is in copy mode"
    try:
        clients = await tmux("list-clients", "-t", f"={session}", "-F", "#{client_activity}")
    except TmuxFailed:
        clients = ""
    now = time.time()
    if any(line.strip().isdigit() and now - int(line) < TYPING_QUIET_S for line in clients.splitlines()):
        return "a person is typing in this session"
    try:
        first = await tmux("capture-pane", "-p", "-t", pane)
        await asyncio.sleep(RENDER_PROBE_S)
        second = await tmux("capture-pane", "-p", "-t", pane)
    except TmuxFailed as exc:
        return f"pane missing ({exc})"
    if first != second:
        return "the pane is still rendering"
    return _screen_problem(second, ready, blocked)


def _screen_problem(screen: str, ready: str | None, blocked: tuple[str, ...]) -> str | None:
    if ready and ready not in screen:
        return f"the CLI is not ready for input yet (no {ready!r} on screen)"
    dialog = next((text for text in blocked if text in screen), None)
    return f"a dialog is open ({dialog!r} on screen)" if dialog else None


async def nudge(
    pod: str, agent: str, text: str, *, ready: str | None = None, clear: tuple[str, ...] = (),
    blocked: tuple[str, ...] = (), deliver: Callable[[str], bool] | None = None,
) -> Wake:
    """Press the `clear` keys, type `text`, pause, press Enter: `sent`, or `skipped` with why.

    `deliver`: a way to hand `text` to the CLI without keystrokes (an input file it watches); it
    runs once the pane is ready, as typing would, and only when it returns False is `text` typed."""
    pane = target(pod, agent)
    reason = await pane_state(pane, ready, blocked)
    if reason is not None:
        return skipped(reason)
    if deliver is not None and deliver(text):
        return SENT
    try:
        for key in clear:
            await tmux("send-keys", "-t", pane, key)
        await tmux("send-keys", "-t", pane, "-l", text)
        await asyncio.sleep(SUBMIT_PAUSE_S)
        await tmux("send-keys", "-t", pane, "Enter")
    except TmuxFailed as exc:
        return skipped(str(exc))
    return SENT
