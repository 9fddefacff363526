"""The broker's `Notifier` port: the pod file's `notify:` done (a command, or the terminal bell).

A command is run as its argv (placeholders already filled by the broker, no shell), with its
output discarded and a time limit (`RUN_TIMEOUT_S`, then it is killed): it never holds the broker up.
The bell is a BEL written to the agent's pane (the pod's `podctl` window for a pod-wide notice):
tmux marks that window and rings every terminal attached to the session (its `bell-action`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from podctl.broker.ports import Notice

from . import tmux_nudge
from .tmux import TRANSCRIPT_WINDOW, target

RUN_TIMEOUT_S = 10.0


async def notify(pod: str, notice: Notice) -> str:
    """Do one notice; what was done, or why not."""
    if notice.bell:
        return await ring(pod, notice.agent or TRANSCRIPT_WINDOW)
    return await run(list(notice.run))


async def run(argv: list[str]) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as exc:
        return f"could not run {argv[0]}: {exc.strerror or exc}"
    try:
        code = await asyncio.wait_for(proc.wait(), timeout=RUN_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return f"{argv[0]} ran over {RUN_TIMEOUT_S:g}s: killed"
    return f"ran {argv[0]}: exit {code}"


async def ring(pod: str, window: str) -> str:
    try:
        tty = (await tmux_nudge.tmux("display-message", "-p", "-t", target(pod, window), "#{pane_tty}")).strip()
    except (tmux_nudge.TmuxFailed, OSError) as exc:
        return f"no pane to ring in: {exc}"
    if not tty.startswith("/dev/"):
        return f"no terminal for {window}"
    try:
        fd = os.open(tty, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot write to {tty}: {exc.strerror}"
    try:
        os.write(fd, b"\a")
    except OSError as exc:
        return f"cannot write to {tty}: {exc.strerror}"
    finally:
        os.close(fd)
    return f"rang the bell in {window}"
