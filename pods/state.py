"""Where podctl keeps pod state: the one rule, standard library only (so broker/paths.py can import it)."""

from __future__ import annotations

import os
from pathlib import Path

from .layout import CLI_CACHE as CLI_CACHE  # noqa: PLC0414 - re-exported for its readers


def state_root() -> Path:
    """`$PODCTL_HOME`, else `$XDG_STATE_HOME/podctl`, else `~/.local/state/podctl`."""
    home = os.environ.get("PODCTL_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "podctl"
