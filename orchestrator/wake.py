"""How an idle agent is woken, as its adapter says: by its own plugin when it has one that takes
wake requests (a file in the agent's folder, answered in `<file>.ack`), else, or when the plugin
cannot, by the adapter's fixed wake text, once its pane is ready: written to an input the CLI
watches when the adapter has `wake_input` (no keystroke), else typed (orchestrator/tmux_nudge.py).

Neither way carries message content: the file holds nothing of a message, and the plugin fetches
what waits through the agent's own authenticated hook.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import partial
from pathlib import Path

from podctl.broker.paths import PodPaths
from podctl.broker.ports import SENT, Wake, skipped
from podctl.hooks.adapter import get_adapter

from . import tmux_nudge

PLUGIN_ANSWER_S = 3.0
"""How long a plugin has to answer a wake request before the wake is typed instead."""


async def wake(pod: str, agent: str, cli: str) -> Wake:
    """Wake `agent`: `sent`, or `skipped` with why (the broker's Nudger)."""
    adapter = get_adapter(cli)
    agent_dir = PodPaths.of(pod).agent_dir(agent)
    if adapter.wake_file:
        answer = await ask_plugin(agent_dir / adapter.wake_file)
        if answer == "prompted":
            return SENT
        if answer == "busy":
            return skipped("the agent is busy")
    return await tmux_nudge.nudge(
        pod, agent, adapter.wake_text, ready=adapter.wake_ready_text, clear=adapter.wake_clear_keys,
        blocked=adapter.wake_blocked_texts, deliver=partial(adapter.wake_input, agent_dir),
    )


async def ask_plugin(path: Path, timeout: float = PLUGIN_ANSWER_S) -> str | None:
    """Leave a wake request for the agent's plugin and wait for its answer (None: no answer in time)."""
    ack = path.with_name(path.name + ".ack")
    ack.unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("wake\n")
    os.replace(tmp, path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = ack.read_text().strip()
        except OSError:
            await asyncio.sleep(0.05)
            continue
        ack.unlink(missing_ok=True)
        return answer
    path.unlink(missing_ok=True)
    return None
