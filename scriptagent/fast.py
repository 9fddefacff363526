"""The script agent's command: `python -I -S scriptagent/fast.py AGENT_JSON`.

Like the relay it speaks to (shim/fast.py), it runs without site-packages: it registers the
`podctl`, `podctl.pods`, `podctl.broker` and `podctl.scriptagent` packages by hand, pointing at the
folders beside it, and imports only the agent, the script format and `visible` (standard library
all). `python -m podctl.scriptagent AGENT_JSON` runs the same agent with site-packages.
"""

import sys

HERE = __file__.rsplit("/", 1)[0]


def _package(name: str, folder: str) -> None:
    module = type(sys)(name)
    module.__path__ = [folder] if folder else []
    module.__package__ = name
    sys.modules[name] = module


def main() -> int:
    if "podctl.scriptagent" not in sys.modules:
        root = HERE.rsplit("/", 1)[0]
        _package("podctl", "")
        _package("podctl.pods", root + "/pods")
        _package("podctl.broker", root + "/broker")
        _package("podctl.scriptagent", HERE)
    from podctl.scriptagent.agent import main as agent

    return agent(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
