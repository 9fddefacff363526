"""The one exception a person running podctl is meant to read.

Every layer raises a `PodctlError` (or a subclass) whose message says what was wrong, where, and
what to do; the command line catches it once, prints it and exits with `exit_code`. Anything
else escaping a command is a bug, shown with its traceback only under `--debug`.
"""

from __future__ import annotations


class PodctlError(Exception):
    """An error meant for the user: the message is complete and actionable."""

    exit_code = 1


class UsageError(PodctlError):
    """The command line itself was wrong (a bad option combination)."""

    exit_code = 2
