"""The command of every agent's MCP server: `python -I -S shim/fast.py --pod P --agent A --socket S --token-file F`.

Like the hook path (hooks/fast.py, whose few lines of package registration this mirrors: an entry
run with `-S` can import nothing of podctl before it registers the packages), it runs without
site-packages: it registers the `podctl`,
`podctl.broker` and `podctl.shim` packages by hand, pointing at the folders beside it, and imports
only the relay and the wire protocol. A CLI waits for this process's answer to `initialize`
before its agent can start, so it must start at the speed of a bare interpreter.
"""

import sys

HERE = __file__.rsplit("/", 1)[0]


def _package(name: str, folder: str) -> None:
    module = type(sys)(name)
    module.__path__ = [folder] if folder else []
    module.__package__ = name
    sys.modules[name] = module


def main() -> int:
    if "podctl.shim" not in sys.modules:
        _package("podctl", "")
        _package("podctl.pods", HERE.rsplit("/", 1)[0] + "/pods")
        _package("podctl.broker", HERE.rsplit("/", 1)[0] + "/broker")
        _package("podctl.shim", HERE)
    from podctl.shim.relay import main as relay

    return relay(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
