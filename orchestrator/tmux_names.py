"""Which tmux server and which window: plain `tmux` command lines, without libtmux, for the light
commands (`attach`, the live view's jump to an agent's window). orchestrator/tmux.py drives the
server through libtmux with the same names."""

from __future__ import annotations

import os


def socket_name() -> str | None:
    """`PODCTL_TMUX_SOCKET`: a private tmux server (tests always set it); None: the user's default."""
    return os.environ.get("PODCTL_TMUX_SOCKET") or None


def tmux_argv(*args: str) -> list[str]:
    """A `tmux` command line on the pod's tmux server (for attach and for scripts)."""
    sock = socket_name()
    return ["tmux", *(["-L", sock] if sock else []), *args]


def target(pod: str, window: str | None = None) -> str:
    """A tmux target matching the pod's session (and an agent's window) by exact name."""
    return f"={pod}" if window is None else f"={pod}:={window}"
