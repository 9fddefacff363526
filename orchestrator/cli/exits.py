"""How a command ends besides success and a PodctlError: the exit statuses a script can rely on
(README, "Exit statuses"), and a closed pipe ended the way Unix tools end. Standard library only:
the fast path (cli/fast.py) uses it."""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # not `typing` at run time: the fast path of `podctl send` imports this module
    from typing import NoReturn

NO_REPLY = 3
"""`send --ask --wait` ended without every reply it waits for (the ask stays open)."""
INTERRUPTED = 128 + signal.SIGINT
"""Ctrl-C (130, what a shell reports for a tool SIGINT ended)."""
CLOSED_PIPE = 128 + signal.SIGPIPE
"""The reader of the output went away (`podctl ls | head -1`): 141, what a shell reports for a Unix
tool SIGPIPE ended. Python ignores SIGPIPE (a write raises instead), so it is said explicitly."""


def closed_pipe() -> NoReturn:
    """End the command because its output pipe is closed: no traceback, and no "Exception ignored"
    when the interpreter flushes what is still buffered at exit (standard output is sent to
    /dev/null first)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    raise SystemExit(CLOSED_PIPE)
