"""The `podctl` entry point.

`podctl hook ...` and `podctl shim ...` are dispatched before anything heavy is imported: hooks
run after every tool call and the shim relays an agent's MCP session, both standard-library
only (the CLIs run them as `python -I -S .../fast.py`). Everything else goes through the typer app, and every
error meant for the user (a PodctlError, a bad pod file, an unreachable broker) is printed here,
once, without a traceback (`--debug` shows it). Ctrl-C ends a command with 130 and a closed output
pipe with 141, quietly (cli/exits.py).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hook"]:
        from podctl.hooks.path.run import main as hook_main

        sys.exit(hook_main(args[1:]))
    if args[:1] == ["shim"]:
        from podctl.shim.relay import main as shim_main

        sys.exit(shim_main(args[1:]))
    from . import exits

    try:
        try:
            _command(args)
        finally:
            sys.stdout.flush()  # what is still buffered meets a closed pipe here, not at interpreter exit
    except KeyboardInterrupt:
        sys.exit(exits.INTERRUPTED)
    except BrokenPipeError:
        exits.closed_pipe()


def _command(args: list[str]) -> None:
    """A command of people and scripts: the fast path, else typer; errors printed once."""
    if args == ["--version"]:
        from importlib.metadata import version

        print(f"podctl {version('podctl')}")
        sys.exit(0)
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    from podctl.broker import wire
    from podctl.pods.errors import PodctlError

    try:
        from .fast import COMMANDS

        if args[:1] and args[0] in COMMANDS:
            from .fast import run

            code = run(args)
            if code is not None:
                sys.exit(code)
        from .app import build_command

        build_command()(args=args, prog_name="podctl", standalone_mode=True)
    except (PodctlError, wire.BrokerUnavailable, wire.BrokerError) as exc:
        if debug:
            raise
        sys.exit(_report(exc))


def _report(exc: BaseException) -> int:
    from podctl.broker import wire
    from podctl.pods.errors import PodctlError

    if getattr(exc, "problems", None):  # a PodFileError: FILE:LINE:COL lines, nothing to add
        print(str(exc), file=sys.stderr)
        return 1
    if isinstance(exc, wire.BrokerError):
        print(f"podctl: {exc.message}", file=sys.stderr)
        return 1
    if isinstance(exc, wire.BrokerUnavailable):
        print(f"podctl: {exc}", file=sys.stderr)
        return 1
    print(f"podctl: {exc}", file=sys.stderr)
    return exc.exit_code if isinstance(exc, PodctlError) else 1


if __name__ == "__main__":
    main()
