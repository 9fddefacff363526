"""Complete package-lock.json for the platform packages the npm registry here does not serve.

Several pinned CLIs list one optional package per platform (`@cline/cli-darwin-arm64`, ...). The
registry this project reaches serves only some of them, so `npm install --package-lock-only`
leaves the others out of the lock, and `npm ci` then refuses the lock ("Missing: ... from lock
file"). This adds each missing one as the optional package of its platform (os, cpu, libc from its
name): `npm ci` skips it on any other platform, and tolerates its absence on a matching one.

    cd tests/clis && npm install --package-lock-only --ignore-scripts && python complete_lock.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PLATFORMS = (("darwin", "darwin"), ("linux", "linux"), ("windows", "win32"), ("win32", "win32"))


def platform_entry(name: str, version: str) -> dict[str, Any]:
    short = name.rsplit("/", 1)[-1]
    system = next(npm for word, npm in PLATFORMS if word in short)
    entry: dict[str, Any] = {"version": version, "cpu": ["arm64" if "arm64" in short else "x64"], "optional": True,
                             "os": [system]}
    if "musl" in short:
        entry["libc"] = ["musl"]
    return entry


def complete(lock: dict[str, Any]) -> list[str]:
    """Add the missing optional platform packages to `lock`; returns their names."""
    packages: dict[str, Any] = lock["packages"]
    added = {}
    for entry in list(packages.values()):
        for dep, version in entry.get("optionalDependencies", {}).items():
            path = f"node_modules/{dep}"
            if path not in packages and path not in added:
                added[path] = platform_entry(dep, version)
    packages.update(added)
    lock["packages"] = dict(sorted(packages.items(), key=lambda item: (item[0] != "", item[0])))
    return sorted(added)


def main(path: str = str(Path(__file__).with_name("package-lock.json"))) -> None:
    lock = json.loads(Path(path).read_text())
    for name in complete(lock):
        print(f"added {name}")
    Path(path).write_text(json.dumps(lock, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
