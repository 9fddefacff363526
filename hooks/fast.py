"""The command every CLI hook runs: `python -I -S hooks/fast.py --socket S --token-file F --agent NAME ...`
(the options: hooks/path/run.py).

`-S` skips site-packages, so `podctl` is not importable the usual way: this file registers the
`podctl`, `podctl.pods`, `podctl.broker` and `podctl.hooks` packages by hand, pointing at the folders beside it,
and Python's own path finder loads their modules from there. Nothing else is imported, and the
process ends with `_exit` once its output is flushed (tearing the interpreter down costs more than
the hook's own work): a hook costs little more than a bare interpreter start.
"""

import sys

HERE = __file__.rsplit("/", 1)[0]


def _package(name: str, folder: str) -> None:
    module = type(sys)(name)
    module.__path__ = [folder] if folder else []
    module.__package__ = name
    sys.modules[name] = module


def main() -> int:
    if "podctl.hooks" not in sys.modules:
        _package("podctl", "")
        _package("podctl.pods", HERE.rsplit("/", 1)[0] + "/pods")
        _package("podctl.broker", HERE.rsplit("/", 1)[0] + "/broker")
        _package("podctl.hooks", HERE)
    from podctl.hooks.path.run import main as run

    return run(sys.argv[1:])


def _flush_and_exit() -> None:
    """Exit 0 at once, the output written (a closed stdout loses only what could not be written)."""
    import posix

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a hook never breaks its CLI, whatever it is
            pass
    posix._exit(0)


if __name__ == "__main__":
    main()
    _flush_and_exit()
