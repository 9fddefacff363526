"""The `podctl` entry point.

`podctl hook ...` and `podctl shim ...` are dispatched before anything heavy is imported:
hooks run after every tool call and must stay standard-library only, and the shim's start-up
time is dominated by importing `mcp`. Everything else goes through the typer app.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["hook"]:
        from podctl.hooks.run import main as hook_main

        sys.exit(hook_main(args[1:]))
    if args[:1] == ["shim"]:
        from podctl.shim.server import main as shim_main

        sys.exit(shim_main(args[1:]))
    from .app import build_app

    build_app()(args=args, prog_name="podctl")


if __name__ == "__main__":
    main()
