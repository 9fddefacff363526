"""Where a pod's state lives on disk (its names: pods/layout.py), and the rules for what may name it.
Standard library only."""

from __future__ import annotations

import os
from pathlib import Path

from podctl.pods import layout
from podctl.pods.state import state_root as state_root  # noqa: PLC0414 - re-exported: the state root rule is one

USER = "user"
"""The human's member name in every pod."""
BRIDGE = "podctl.bridge"
"""The identity of a pod's bridge to its other sites (docs/sites.md): never an agent's name (a dot), and
only the bridge operations take it."""


NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def valid_pod_name(name: str) -> bool:
    """The pod file's name rule (`[a-z0-9][a-z0-9-]*`), without importing `re`."""
    return bool(name) and name[0] != "-" and set(name) <= NAME_CHARS


def ensure_private_dir(path: Path) -> Path:
    """Create `path` and every missing parent with mode 0700, whatever the umask, and force 0700 on `path`."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)
    os.chmod(path, 0o700)
    return path


class PodPaths:
    """Every file of one pod's state folder. A plain class, not a dataclass: `podctl send` imports
    this module, and `dataclasses` (with `inspect`) would be most of its start-up."""

    __slots__ = ("pod", "root")

    def __init__(self, pod: str, root: Path) -> None:
        self.pod = pod
        self.root = root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PodPaths) and (self.pod, self.root) == (other.pod, other.root)

    def __hash__(self) -> int:
        return hash((self.pod, self.root))

    def __repr__(self) -> str:
        return f"PodPaths(pod={self.pod!r}, root={self.root!r})"

    @classmethod
    def of(cls, pod: str, root: Path | None = None) -> PodPaths:
        """The pod's folder under the state root; a name that is not a pod name is refused, so no
        argument can lead outside `$PODCTL_HOME`."""
        if not valid_pod_name(pod):
            raise ValueError(
                f"{pod!r} is not a pod name: lowercase letters, digits and '-', starting with a letter or digit"
            )
        return cls(pod=pod, root=(root or state_root()) / pod)

    @property
    def marker(self) -> Path:
        return self.root / layout.MARK

    @property
    def broker_lock(self) -> Path:
        return self.root / layout.BROKER_LOCK

    @property
    def supervisor_lock(self) -> Path:
        return self.root / layout.SUPERVISOR_LOCK

    @property
    def supervisor_pid(self) -> Path:
        return self.root / layout.SUPERVISOR_PID

    @property
    def apply_lock(self) -> Path:
        return self.root / layout.APPLY_LOCK

    @property
    def socket(self) -> Path:
        return self.root / layout.SOCKET

    @property
    def db(self) -> Path:
        return self.root / layout.DB

    @property
    def broker_pid(self) -> Path:
        return self.root / layout.BROKER_PID

    @property
    def pod_file_record(self) -> Path:
        return self.root / layout.POD_FILE_RECORD

    @property
    def site_record(self) -> Path:
        return self.root / layout.SITE

    @property
    def bridge_lock(self) -> Path:
        return self.root / layout.BRIDGE_LOCK

    @property
    def bridge_pid(self) -> Path:
        return self.root / layout.BRIDGE_PID

    def read_site(self) -> str | None:
        """The site this machine runs of the pod (None: the pod is not split across machines here)."""
        try:
            site = self.site_record.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return site if valid_pod_name(site) else None

    def write_site(self, site: str | None) -> None:
        if site is None:
            self.site_record.unlink(missing_ok=True)
            return
        tmp = self.site_record.with_name(layout.SITE + ".tmp")
        tmp.write_text(site + "\n", encoding="utf-8")
        os.replace(tmp, self.site_record)

    @property
    def applied(self) -> Path:
        """What the supervisor (or up) last applied (orchestrator/pod.py)."""
        return self.root / layout.APPLIED

    def log(self, name: str) -> Path:
        """A log file in `logs/` (layout.BROKER_LOG, ...)."""
        return self.logs / name

    def exit_log(self, agent: str) -> Path:
        return self.logs / layout.exit_log(agent)

    @property
    def logs(self) -> Path:
        return self.root / layout.LOGS

    @property
    def agents(self) -> Path:
        return self.root / layout.AGENTS

    def agent_dir(self, name: str) -> Path:
        return self.agents / name

    def token_file(self, name: str) -> Path:
        if name == BRIDGE:
            return self.root / layout.BRIDGE_TOKEN
        return self.agent_dir(name) / layout.TOKEN

    def ensure(self) -> PodPaths:
        """Create the pod's folders with private permissions, marked as podctl's own."""
        ensure_private_dir(self.root)
        ensure_private_dir(self.agents)
        ensure_private_dir(self.logs)
        if not self.marker.exists():
            self.marker.write_text("a pod folder made by podctl\n")
        return self

    def is_pod_folder(self) -> bool:
        """A real folder podctl made directly under the state root (what `delete` may remove): it
        holds the mark `ensure` writes (a `pod.yaml.path` alone proves nothing)."""
        root = self.root
        if root.is_symlink() or not root.is_dir():
            return False
        if root.resolve().parent != root.parent.resolve():
            return False
        return self.marker.is_file() and not self.marker.is_symlink()

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
        import secrets  # here: reading a token (`podctl send`) needs none of it

        token = secrets.token_urlsafe(24)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self.read_token(name)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
        return token
