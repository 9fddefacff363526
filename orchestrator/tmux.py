"""The pod's tmux session through libtmux: a session named after the pod, a `podctl` window
running the live transcript, and one window per agent named after it.

`PODCTL_TMUX_SOCKET` selects a private tmux server (tests always set it). Agent windows keep
their pane when the CLI exits (`remain-on-exit`), so an exited agent shows as stopped instead of
vanishing; each window carries the fingerprint of the launch it runs (`@podctl_fp`), which is
how the planner sees that an agent's command line changed.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass

import libtmux

from . import proctree

TRANSCRIPT_WINDOW = "podctl"
FINGERPRINT_OPTION = "@podctl_fp"


class TmuxMissing(RuntimeError):
    pass


def socket_name() -> str | None:
    return os.environ.get("PODCTL_TMUX_SOCKET") or None


def server() -> libtmux.Server:
    if shutil.which("tmux") is None:
        raise TmuxMissing("tmux is not installed: install it (Debian: apt-get install tmux) and run again")
    return libtmux.Server(socket_name=socket_name())


def tmux_argv(*args: str) -> list[str]:
    """A `tmux` command line on the pod's tmux server (for attach and for scripts)."""
    sock = socket_name()
    return ["tmux", *(["-L", sock] if sock else []), *args]


def target(pod: str, window: str | None = None) -> str:
    """A tmux target matching the pod's session (and an agent's window) by exact name."""
    return f"={pod}" if window is None else f"={pod}:={window}"


@dataclass(frozen=True)
class WindowState:
    name: str
    dead: bool
    exit_status: int | None
    pid: int | None
    fingerprint: str


def session_exists(srv: libtmux.Server, pod: str) -> bool:
    try:
        return srv.has_session(pod, exact=True)
    except Exception:  # noqa: BLE001 - no server running means no session
        return False


def windows(srv: libtmux.Server, pod: str) -> dict[str, WindowState]:
    """Every window of the pod's session with its first pane's state."""
    if not session_exists(srv, pod):
        return {}
    fmt = "\t".join(["#{window_name}", "#{pane_dead}", "#{pane_dead_status}", "#{pane_pid}", "#{" + FINGERPRINT_OPTION + "}"])
    result = srv.cmd("list-panes", "-s", "-t", f"={pod}", "-F", fmt)
    out: dict[str, WindowState] = {}
    for line in result.stdout:
        name, dead, status, pid, fp = (line.split("\t") + [""] * 5)[:5]
        if name in out:
            continue
        out[name] = WindowState(
            name=name, dead=dead == "1", exit_status=int(status) if status.isdigit() else None,
            pid=int(pid) if pid.isdigit() else None, fingerprint=fp,
        )
    return out


def create_session(srv: libtmux.Server, pod: str, transcript_cmd: list[str], cwd: str) -> None:
    srv.new_session(
        session_name=pod, window_name=TRANSCRIPT_WINDOW, window_command=shlex.join(transcript_cmd),
        start_directory=cwd, attach=False, x=200, y=50,
    )
    srv.cmd("set-option", "-t", f"={pod}", "history-limit", "20000")


def start_window(
    srv: libtmux.Server, pod: str, name: str, argv: list[str], env: dict[str, str], cwd: str, fingerprint: str
) -> None:
    """Open the agent's window running `argv` (killing a previous window of that name)."""
    if name in windows(srv, pod):
        srv.cmd("kill-window", "-t", f"={pod}:={name}")
    args = ["new-window", "-d", "-t", f"={pod}:", "-n", name, "-c", cwd]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    srv.cmd(*args, shlex.join(argv))
    _mark(srv, pod, name, fingerprint)


def respawn_window(
    srv: libtmux.Server, pod: str, name: str, argv: list[str], env: dict[str, str], cwd: str, fingerprint: str
) -> None:
    """Restart the agent's CLI in its existing window (fresh process, same window)."""
    args = ["respawn-pane", "-k", "-t", f"={pod}:={name}.0", "-c", cwd]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    srv.cmd(*args, shlex.join(argv))
    _mark(srv, pod, name, fingerprint)


def _mark(srv: libtmux.Server, pod: str, name: str, fingerprint: str) -> None:
    target = f"={pod}:={name}"
    srv.cmd("set-option", "-w", "-t", target, "remain-on-exit", "on")
    srv.cmd("set-option", "-w", "-t", target, FINGERPRINT_OPTION, fingerprint)


def capture(srv: libtmux.Server, pod: str, name: str, lines: int = 200) -> str:
    """The last `lines` of an agent's pane (a dead pane included), or "" if it is gone."""
    try:
        result = srv.cmd("capture-pane", "-p", "-J", "-S", f"-{lines}", "-t", target(pod, name))
    except Exception:  # noqa: BLE001 - no server or no pane: nothing to show
        return ""
    return "\n".join(result.stdout) if not result.stderr else ""


def kill_window(srv: libtmux.Server, pod: str, name: str) -> None:
    """Close an agent's window and end its CLI's whole process tree."""
    window = windows(srv, pod).get(name)
    pids = proctree.tree([window.pid]) if window and window.pid else set()
    srv.cmd("kill-window", "-t", f"={pod}:={name}")
    proctree.end(pids)


def kill_session(srv: libtmux.Server, pod: str) -> None:
    """Close the pod's session and end every process its panes started."""
    if not session_exists(srv, pod):
        return
    pids = proctree.tree([w.pid for w in windows(srv, pod).values() if w.pid])
    srv.cmd("kill-session", "-t", f"={pod}")
    proctree.end(pids)
