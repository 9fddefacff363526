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
            env = npm_env()
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=target, check=True, timeout=timeout, capture_output=True, env=env,
            )
            for script in POSTINSTALLS:
                subprocess.run(["node", script], cwd=target, check=True, timeout=timeout, capture_output=True, env=env)
            done.write_text("ok\n")
    return target / "node_modules" / ".bin"


def npm_env() -> dict[str, str]:
    """npm's cache beside the installs, and the user's npm settings read (never written): the install
    writes nothing in the user's home (HOME is a throwaway folder during tests)."""
    env = {**os.environ, "npm_config_cache": str(cache_root() / "npm-cache")}
    user_npmrc = Path(os.environ.get("PODCTL_TEST_USER_HOME") or "~").expanduser() / ".npmrc"
    if user_npmrc.is_file() and "npm_config_userconfig" not in os.environ:
        env["npm_config_userconfig"] = str(user_npmrc)
    return env
