"""Where podctl keeps pod state: the one rule, standard library only (so broker/paths.py can import it)."""

from __future__ import annotations

import os
from pathlib import Path

CLI_CACHE = ".cache"
"""`<state root>/.cache/<cli>/`: what a CLI would otherwise cache in the user's home, shared by its
agents of every pod of the state root (no pod can be named `.cache`)."""


def state_root() -> Path:
    """`$PODCTL_HOME`, else `$XDG_STATE_HOME/podctl`, else `~/.local/state/podctl`."""
    home = os.environ.get("PODCTL_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "podctl"
