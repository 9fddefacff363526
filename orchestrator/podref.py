"""Finding a pod by the name (or pod file) a command was given: the light half of orchestrator/pod.py,
imported by the commands people run often (`send`, `tail`), so they start fast.

Every command that names a pod goes through `find`, so a name that is not a pod name, or a pod
that does not exist, is a clear error before anything touches the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from podctl.broker.paths import PodPaths, state_root, valid_pod_name
from podctl.pods.errors import PodctlError

TYPE_CHECKING = False
if TYPE_CHECKING:  # not `typing` or `json` at import: `podctl send` imports this module (its start-up is its cost)
    from typing import Any


class NoSuchPod(PodctlError):
    pass


def known_pods() -> list[str]:
    root = state_root()
    if not root.is_dir():
        return []
    names = []
    for folder in root.iterdir():
        if valid_pod_name(folder.name) and PodPaths.of(folder.name).is_pod_folder():
            names.append(folder.name)
    return sorted(names)


def _no_such(name: str) -> NoSuchPod:
    import difflib

    pods = known_pods()
    close = difflib.get_close_matches(name, pods, n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}? " if close else ""
    listing = f"known pods: {', '.join(pods)}" if pods else "there are no pods yet: `podctl up POD_FILE` starts one"
    return NoSuchPod(f"no pod named {name!r} in {state_root()} ({guess}{listing})")


def paths_of(name: str) -> PodPaths:
    """The folder of an existing pod; a bad name or an unknown pod is a PodctlError."""
    if not valid_pod_name(name):
        raise PodctlError(
            f"{name!r} is not a pod name (lowercase letters, digits and '-', starting with a letter or digit);"
            " give the pod's name or its pod file"
        )
    paths = PodPaths.of(name)
    if not paths.is_pod_folder():
        raise _no_such(name)
    return paths


def name_of(arg: str) -> str:
    """A POD argument is a pod's name, or the path of its pod file (`.yaml`/`.yml`)."""
    candidate = Path(arg)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        from podctl.pods.load import load_pod

        return load_pod(candidate).name
    return arg


def find(arg: str) -> PodPaths:
    return paths_of(name_of(arg))


def recorded_file(paths: PodPaths) -> Path | None:
    """The pod file the pod was last brought up from: its desired state."""
    try:
        text = paths.pod_file_record.read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def record_file(paths: PodPaths, pod_file: Path) -> None:
    paths.ensure()
    tmp = paths.pod_file_record.with_name(paths.pod_file_record.name + ".tmp")
    tmp.write_text(f"{pod_file.resolve()}\n")
    os.replace(tmp, paths.pod_file_record)


def applied_record(paths: PodPaths) -> dict[str, Any]:
    """What the supervisor (or `up`) last applied: `{digest, ok, summary, ts}` ({} if nothing yet)."""
    import json

    try:
        record: dict[str, Any] = json.loads(paths.applied.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def follow_problem(paths: PodPaths) -> str | None:
    """Why the pod no longer follows its pod file (its last save was invalid or unreadable, the
    file is gone), None while it does. The supervisor records each save it refuses in applied.json."""
    record = applied_record(paths)
    if record.get("ok") is False:
        return str(record.get("summary") or "its last save was not applied")
    recorded = recorded_file(paths)
    if recorded is not None and not os.path.lexists(recorded):
        return f"{recorded} is gone: the pod runs on as it last applied it"
    return None
