"""Install the pinned agent CLIs (tests/clis/package.json + lock) into a cache folder with `npm ci`.

The cache folder is keyed by the lock file's hash, so a version bump installs afresh and an
unchanged lock costs nothing. A file lock keeps parallel test workers from installing twice.
Install scripts are not run (`--ignore-scripts`) except the three the CLIs need: Claude Code's,
OpenCode's and Kilo's postinstall put the platform's native binary in place (`bin/*.exe`,
`bin/.kilo`). Cline's is left out: its wrapper finds the platform binary in node_modules by
itself, and its postinstall renames a file under the installing user's `~/.cline`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


RECIPE = b"npm ci --ignore-scripts + claude-code install.cjs + opencode-ai postinstall.mjs + kilo postinstall.mjs"
POSTINSTALLS = (
    "node_modules/@anthropic-ai/claude-code/install.cjs", "node_modules/opencode-ai/postinstall.mjs",
    "node_modules/@kilocode/cli/postinstall.mjs",
)


def cache_root() -> Path:
    return Path(os.environ.get("PODCTL_TEST_CLI_CACHE", REPO / ".cache" / "clis"))


def install_clis(timeout: float = 900.0) -> Path:
    """Return the `node_modules/.bin` folder holding every pinned CLI (`claude`, `codex`, `gemini`, `opencode`, `qwen`, `copilot`, `kilo`, `cline`)."""
    lock = (HERE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (HERE / "package.json").read_bytes() + RECIPE).hexdigest()[:16]
    target = cache_root() / digest
    target.mkdir(parents=True, exist_ok=True)
    done = target / ".installed"
    with open(target / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if not done.exists():
            for name in ("package.json", "package-lock.json"):
                shutil.copy(HERE / name, target / name)
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=target, check=True, timeout=timeout, capture_output=True,
            )
            for script in POSTINSTALLS:
                subprocess.run(["node", script], cwd=target, check=True, timeout=timeout, capture_output=True)
            done.write_text("ok\n")
    return target / "node_modules" / ".bin"
