"""Where a pod's state lives on disk. Standard library only: hooks import it.

```
$PODCTL_HOME/<pod>/          0700
  broker.sock                0600
  pod.db                     SQLite, WAL
  pod.yaml.path              the pod file this pod was brought up from (for resume)
  broker.pid                 pid of the broker daemon
  agents/<name>/             per-agent config the CLIs read, and its token (0600)
  logs/                      broker, supervisor, per-agent logs
```
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

USER = "user"
"""The human's member name in every pod."""


def state_root() -> Path:
    """`$PODCTL_HOME`, else `$XDG_STATE_HOME/podctl`, else `~/.local/state/podctl`."""
    home = os.environ.get("PODCTL_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "podctl"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) and force mode 0700 on it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class PodPaths:
    """Every file of one pod's state folder."""

    pod: str
    root: Path

    @classmethod
    def of(cls, pod: str, root: Path | None = None) -> PodPaths:
        return cls(pod=pod, root=(root or state_root()) / pod)

    @property
    def socket(self) -> Path:
        return self.root / "broker.sock"

    @property
    def db(self) -> Path:
        return self.root / "pod.db"

    @property
    def broker_pid(self) -> Path:
        return self.root / "broker.pid"

    @property
    def pod_file_record(self) -> Path:
        return self.root / "pod.yaml.path"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    def agent_dir(self, name: str) -> Path:
        return self.agents / name

    def token_file(self, name: str) -> Path:
        return self.agent_dir(name) / "token"

    def ensure(self) -> PodPaths:
        """Create the pod's folders with private permissions."""
        ensure_private_dir(self.root)
        ensure_private_dir(self.agents)
        ensure_private_dir(self.logs)
        return self

    def read_token(self, name: str) -> str:
        """The agent's token; raises FileNotFoundError if it was never issued."""
        return self.token_file(name).read_text(encoding="utf-8").strip()

    def issue_token(self, name: str) -> str:
        """Return the agent's token, creating it (0600) the first time.

        Tokens are stable for an agent's whole life so that a restarted CLI keeps its identity.
        """
        path = self.token_file(name)
        try:
            return self.read_token(name)
        except FileNotFoundError:
            pass
        ensure_private_dir(path.parent)
        token = secrets.token_urlsafe(24)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.read_token(name)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
        return token
