"""The command every CLI hook runs: `python -I -S hooks/fast.py --state DIR --agent NAME CLI EVENT`.

`-S` skips site-packages, so `podctl` is not importable the usual way: this file mounts the two
standard-library-only packages it needs (`podctl.broker`, `podctl.hooks`) straight from the
folders beside it, then runs the hook. A hook costs little more than a bare interpreter start.
"""

import importlib.util
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _mount(name: str, folder: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def main() -> int:
    if "podctl" not in sys.modules:
        root = types.ModuleType("podctl")
        root.__path__ = []
        sys.modules["podctl"] = root
    _mount("podctl.broker", HERE.parent / "broker")
    _mount("podctl.hooks", HERE)
    from podctl.hooks.run import main as run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
