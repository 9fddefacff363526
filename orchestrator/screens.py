"""The broker's `ScreenReader` port: an agent's screen read by its adapter's signs (`screen_signs`).

For what a CLI reports through no hook: a login screen, a trust dialog, an API error it retries,
its own permission dialog. Runs inside the broker (tmux subprocesses with a timeout, like the
wake nudge); the broker decides when a screen is worth reading (broker/attention.py).
"""

from __future__ import annotations

import re
from functools import lru_cache

from podctl.broker.ports import Screen, Sign
from podctl.hooks.adapter import ScreenSign, get_adapter

from . import tmux_nudge
from .tmux import target


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


def signs_of(cli: str) -> tuple[ScreenSign, ...]:
    try:
        return get_adapter(cli).screen_signs
    except Exception:  # noqa: BLE001 - an unknown or broken adapter has no signs
        return ()


def read(text: str, signs: tuple[ScreenSign, ...], working: str | None) -> Screen:
    """What a screen's text says, by the first sign found in it."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for sign in signs:
        region = "\n".join(lines[-sign.last_lines:] if sign.last_lines else lines)
        found = _compiled(sign.pattern).search(region)
        if found is None:
            continue
        values = {k: (v or "").strip() for k, v in found.groupdict().items()}
        detail = " ".join(sign.says.format(found.group(0).strip(), **values).split())
        return Screen(Sign(sign.state, sign.kind, detail), _working(text, working))  # type: ignore[arg-type]
    return Screen(None, _working(text, working))


def _working(text: str, working: str | None) -> bool | None:
    return None if working is None else working in text


async def read_screen(pod: str, agent: str, cli: str) -> Screen | None:
    """The agent's screen as its adapter reads it; None without signs, or without a live pane."""
    signs = signs_of(cli)
    if not signs:
        return None
    pane = target(pod, agent)
    try:
        dead = (await tmux_nudge.tmux("display-message", "-p", "-t", pane, "#{pane_dead}")).strip()
        if dead != "0":
            return None
        text = await tmux_nudge.tmux("capture-pane", "-p", "-J", "-t", pane)
    except (tmux_nudge.TmuxFailed, OSError):
        return None
    return read(text, signs, get_adapter(cli).screen_working)
