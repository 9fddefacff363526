"""The broker's process: `python -m podctl.orchestrator.broker_main POD_FILE`, daemonized by `up`
(`podctl broker run POD_FILE` runs it in the foreground).

The broker knows nothing of tmux or of the CLIs; this is where it is given the ports that do
(broker/ports.py): the wake nudge into an agent's pane, the pane reader of pattern rules, the screen
reader of attention (an adapter's screen signs) and the notifier of `notify:`.
"""

from __future__ import annotations

from pathlib import Path

from podctl.broker import daemon
from podctl.broker.ports import Ports

from . import notify, screens, tmux_nudge, wake

PORTS = Ports(nudge=wake.wake, read_pane=tmux_nudge.capture, read_screen=screens.read_screen, notify=notify.notify)


def run(pod_file: Path) -> int:
    return daemon.run(pod_file, PORTS)


if __name__ == "__main__":
    import sys

    sys.exit(run(Path(sys.argv[1])))
