"""The pod's tmux session through libtmux: a session named after the pod, a `podctl` window
running the live view (`podctl ui`), and one window per agent named after it.

`PODCTL_TMUX_SOCKET` selects a private tmux server (tests always set it). Agent windows keep
their pane when the CLI exits (`remain-on-exit`), so an exited agent shows as stopped instead of
vanishing; each window carries the fingerprint of the launch it runs (`@podctl_fp`), which is
how the planner sees that an agent's command line changed.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from dataclasses import dataclass

import libtmux
from podctl.pods.errors import PodctlError

from . import proctree
from .tmux_names import socket_name, target, tmux_argv

__all__ = ["socket_name", "target", "tmux_argv"]

TRANSCRIPT_WINDOW = "podctl"
FINGERPRINT_OPTION = "@podctl_fp"
STATUS_OPTION = "@podctl_status_file"
"""Where an agent's command writes its exit status: tmux does not always record it for a CLI that
exits at once (seen with tmux 3.3), and `up` and `status` must say how an agent died."""


class TmuxMissing(PodctlError):
    pass


def server() -> libtmux.Server:
    if shutil.which("tmux") is None:
        raise TmuxMissing("tmux is not installed: install it (Debian: apt-get install tmux) and run again")
    return libtmux.Server(socket_name=socket_name())




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
    fields = ["#{window_name}", "#{pane_dead}", "#{pane_dead_status}", "#{pane_pid}",
              "#{" + FINGERPRINT_OPTION + "}", "#{" + STATUS_OPTION + "}"]
    result = srv.cmd("list-panes", "-s", "-t", target(pod), "-F", "\t".join(fields))
    out: dict[str, WindowState] = {}
    for line in result.stdout:
        name, dead, status, pid, fp, status_file = (line.split("\t") + [""] * 6)[:6]
        if name in out:
            continue
        if dead == "1" and not status.isdigit() and status_file:
            status = _read_status(status_file)
        out[name] = WindowState(
            name=name, dead=dead == "1", exit_status=int(status) if status.isdigit() else None,
            pid=int(pid) if pid.isdigit() else None, fingerprint=fp,
        )
    return out


def _read_status(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def create_session(srv: libtmux.Server, pod: str, view_cmd: str, view: str, cwd: str) -> None:
    """The pod's session, its first window (`podctl`) running `view_cmd`, marked with `view`."""
    srv.new_session(
        session_name=pod, window_name=TRANSCRIPT_WINDOW, window_command=view_cmd,
        start_directory=cwd, attach=False, x=200, y=50,
    )
    srv.cmd("set-option", "-t", target(pod), "history-limit", "20000")
    srv.cmd("set-option", "-w", "-t", target(pod, TRANSCRIPT_WINDOW), FINGERPRINT_OPTION, view)


def open_view(srv: libtmux.Server, pod: str, view_cmd: str, view: str, cwd: str) -> None:
    """Run `view_cmd` in the `podctl` window (opened again first, as window 0, if it was closed)."""
    if TRANSCRIPT_WINDOW in windows(srv, pod):
        srv.cmd("respawn-window", "-k", "-t", target(pod, TRANSCRIPT_WINDOW), view_cmd)
    else:
        srv.cmd("new-window", "-d", "-b", "-t", f"{target(pod)}:^", "-n", TRANSCRIPT_WINDOW, "-c", cwd, view_cmd)
    srv.cmd("set-option", "-w", "-t", target(pod, TRANSCRIPT_WINDOW), FINGERPRINT_OPTION, view)


@dataclass(frozen=True)
class PaneRun:
    """What an agent's window runs: the CLI's command line, its environment and folder, the
    fingerprint of that launch (`@podctl_fp`), and the file its exit status goes to."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    fingerprint: str
    status_file: str


def start_window(srv: libtmux.Server, pod: str, name: str, run: PaneRun, exists: bool | None = None) -> None:
    """Open the agent's window running `run` (killing a previous window of that name; `exists`
    says whether there is one, when the caller knows). One tmux command line: `up` opens many."""
    if exists if exists is not None else name in windows(srv, pod):
        srv.cmd("kill-window", "-t", target(pod, name))
    srv.cmd("new-window", "-d", "-t", f"={pod}:", "-n", name, "-c", run.cwd, "exec cat", ";",
            "set-option", "-w", "-t", target(pod, name), "remain-on-exit", "on", ";", *_respawn(pod, name, run))


def respawn_window(srv: libtmux.Server, pod: str, name: str, run: PaneRun) -> None:
    """Run the agent's CLI in its window (a fresh process, the same window)."""
    srv.cmd(*_respawn(pod, name, run))


def _respawn(pod: str, name: str, run: PaneRun) -> list[str]:
    """The tmux commands (joined by `;`, run by one tmux process) that mark the window with the
    launch and run it in a fresh process; the previous exit status file is removed first."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(run.status_file)
    script = f'{shlex.join(run.argv)}; s=$?; echo "$s" > "$1"; exit "$s"'
    args = ["set-option", "-w", "-t", target(pod, name), STATUS_OPTION, run.status_file, ";",
            "set-option", "-w", "-t", target(pod, name), FINGERPRINT_OPTION, run.fingerprint, ";",
            "respawn-pane", "-k", "-t", f"{target(pod, name)}.0", "-c", run.cwd]
    for key, value in run.env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, shlex.join(["sh", "-c", script, "podctl-agent", run.status_file])]


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
    srv.cmd("kill-window", "-t", target(pod, name))
    proctree.end(pids)


def kill_session(srv: libtmux.Server, pod: str) -> None:
    """Close the pod's session and end every process its panes started."""
    if not session_exists(srv, pod):
        return
    pids = proctree.tree([w.pid for w in windows(srv, pod).values() if w.pid])
    srv.cmd("kill-session", "-t", target(pod))
    proctree.end(pids)
