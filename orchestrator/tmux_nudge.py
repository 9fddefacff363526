"""The wake nudge: type an adapter's fixed wake text into an idle agent's pane, then Enter.

Runs inside the broker (asyncio subprocesses of `tmux`, no libtmux). Never message content:
the text is the adapter's constant. Text and Enter go in two `send-keys` calls with a pause
between, because several CLIs treat a pasted burst ending in Enter as a newline, not a submit.

Pane-state aware: it does nothing (and says why) when the pane is gone or dead, in copy mode,
still changing on screen (the CLI is rendering), or when a person pressed a key in that
session within the last seconds.
"""

from __future__ import annotations

import asyncio
import os
import time

SUBMIT_PAUSE_S = 0.3
RENDER_PROBE_S = 0.08
TYPING_QUIET_S = 2.0
TMUX_TIMEOUT_S = 5.0


class TmuxFailed(RuntimeError):
    pass


async def tmux(socket: str | None, *args: str) -> str:
    cmd = ["tmux", *(["-L", socket] if socket else []), *args]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=TMUX_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise TmuxFailed(f"tmux {args[0]} timed out") from None
    if proc.returncode != 0:
        raise TmuxFailed(err.decode(errors="replace").strip() or f"tmux {args[0]} failed")
    return out.decode(errors="replace")


async def pane_state(target: str, socket: str | None) -> str | None:
    """None if the pane can be nudged now, else the reason it cannot."""
    try:
        return await _pane_state(target, socket)
    except TmuxFailed as exc:
        return f"pane missing ({exc})"


async def _pane_state(target: str, socket: str | None) -> str | None:
    try:
        info = await tmux(socket, "display-message", "-p", "-t", target, "#{pane_in_mode} #{pane_dead} #{session_name}")
    except TmuxFailed as exc:
        return f"pane missing ({exc})"
    in_mode, dead, session = (info.split() + ["", "", ""])[:3]
    if dead == "1":
        return "the CLI in the pane has exited"
    if in_mode == "1":
        return "the pane is in copy mode"
    try:
        clients = await tmux(socket, "list-clients", "-t", f"={session}", "-F", "#{client_activity}")
    except TmuxFailed:
        clients = ""
    now = time.time()
    if any(line.strip().isdigit() and now - int(line) < TYPING_QUIET_S for line in clients.splitlines()):
        return "a person is typing in this session"
    first = await tmux(socket, "capture-pane", "-p", "-t", target)
    await asyncio.sleep(RENDER_PROBE_S)
    second = await tmux(socket, "capture-pane", "-p", "-t", target)
    if first != second:
        return "the pane is still rendering"
    return None


async def nudge(target: str, text: str, tmux_socket: str | None = None) -> str:
    """Type `text`, pause, press Enter. Returns "sent" or "skipped: <reason>"."""
    socket = tmux_socket if tmux_socket is not None else os.environ.get("PODCTL_TMUX_SOCKET")
    reason = await pane_state(target, socket)
    if reason is not None:
        return f"skipped: {reason}"
    try:
        await tmux(socket, "send-keys", "-t", target, "-l", text)
        await asyncio.sleep(SUBMIT_PAUSE_S)
        await tmux(socket, "send-keys", "-t", target, "Enter")
    except TmuxFailed as exc:
        return f"skipped: {exc}"
    return "sent"
