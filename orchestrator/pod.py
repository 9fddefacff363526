"""A pod as a whole: finding it by name, the pod file recorded for it (its one desired state),
one applier at a time, stopping and deleting it, and its status as data for the CLI to render.

Every command that names a pod goes through `find`, so a name that is not a pod name, or a pod
that does not exist, is a clear error before anything touches the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podctl.broker import wire
from podctl.broker.locks import FileLock, LockBusy
from podctl.broker.paths import USER, PodPaths
from podctl.pods import layout
from podctl.pods.errors import PodctlError

from . import processes, tmux

if TYPE_CHECKING:
    from podctl.broker.records import Status
    from podctl.pods.spec import PodSpec
from .podref import NoSuchPod, applied_record, find, follow_problem, known_pods, name_of, paths_of, recorded_file

__all__ = ["NoSuchPod", "applied_record", "find", "follow_problem", "known_pods", "name_of", "paths_of"]

APPLY_WAIT_S = 300.0
"""How long a command waits for another one applying a change to the same pod."""


# -- the recorded pod file: the pod's desired state ---------------------------------------------


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_applied(paths: PodPaths, digest: str, ok: bool, summary: str, spec: PodSpec | None = None) -> None:
    """Record what was applied (or refused). With the `spec` applied it also keeps where each agent
    works (`agents`: `status` says it), the spec itself (`spec`: the supervisor starts from what was
    applied, whatever the file holds by then) and the digests of the files it names (`named`); a
    refused save keeps the last ones."""
    target = paths.applied
    record: dict[str, Any] = {"digest": digest, "ok": ok, "summary": summary, "ts": time.time()}
    if spec is not None:
        from podctl.pods.transfer import to_wire

        record["agents"], record["spec"] = _workplaces(spec), to_wire(spec)
        record["named"] = {str(path): sha for path, sha in named_digests(spec).items()}
    else:
        previous = applied_record(paths)
        record.update({key: previous.get(key) for key in ("agents", "spec", "named")})
    tmp = target.with_name(layout.APPLIED + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, target)


def named_digests(spec: PodSpec) -> dict[Path, str]:
    """Each file the pod file names (pods.load.files_named), with a digest of its content ("" when it
    cannot be read): the supervisor applies the pod again when one changes."""
    from podctl.pods.load import MAX_FILE_BYTES, files_named, read_regular

    out = {}
    for path in files_named(spec):
        try:
            out[path] = hashlib.sha256(read_regular(path, MAX_FILE_BYTES)).hexdigest()
        except OSError:
            out[path] = ""
    return out


def applied_spec(paths: PodPaths) -> PodSpec | None:
    """The spec last applied to the pod (None if none was recorded)."""
    from podctl.pods.transfer import from_wire

    data = applied_record(paths).get("spec")
    if not isinstance(data, dict):
        return None
    try:
        return from_wire(data.get("spec") or {}, str(data.get("source") or ""))
    except PodctlError:
        return None


def _workplaces(spec: PodSpec) -> dict[str, dict[str, Any]]:
    """Where each agent of the spec works: its folder and its worktree's branch (None: the main checkout)."""
    out: dict[str, dict[str, Any]] = {}
    for name in spec.agents:
        try:
            out[name] = {"workdir": str(spec.agent_workdir(name)), "branch": spec.agent_branch(name)}
        except PodctlError:
            out[name] = {"workdir": str(spec.declared_workdir(name)), "branch": None}
    return out


def wait_applied(paths: PodPaths, pod_file: Path, digest: str, timeout: float = 120.0) -> dict[str, Any]:
    """Wait for the supervisor to apply the pod file as it was written with `digest`.

    If the file was saved again meanwhile (its digest on disk changed), the later save is what
    the supervisor applies: the record returned then says `superseded`."""
    from podctl.pods.load import read_pod_text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = applied_record(paths)
        if record.get("digest") == digest:
            return record
        try:
            now = file_digest(read_pod_text(pod_file))
        except PodctlError:
            now = ""
        if now != digest and record.get("digest") == now:
            return dict(record, superseded=True)
        if processes.supervisor_pid(paths) is None:
            raise PodctlError(f"the supervisor of pod {paths.pod} stopped before applying the change; run `podctl up`")
        time.sleep(0.05)
    raise PodctlError(
        f"the supervisor of pod {paths.pod} did not apply the change within {timeout:.0f}s;"
        f" see {paths.log(layout.SUPERVISOR_LOG)} and `podctl status {paths.pod}`"
    )


# -- one applier at a time -----------------------------------------------------------------------


@contextmanager
def applying(paths: PodPaths, purpose: str, on_wait: Callable[[str], None] | None = None,
             timeout: float = APPLY_WAIT_S) -> Iterator[None]:
    """Hold the pod's apply lock: up, down, delete, restart and the supervisor never overlap."""
    paths.ensure()
    lock = FileLock(paths.apply_lock, purpose)
    try:
        lock.acquire(timeout, on_wait=on_wait)
    except LockBusy as exc:
        raise PodctlError(
            f"pod {paths.pod} is busy: {holder_text(exc.holder)} has been changing it for over"
            f" {timeout:.0f}s; try again when it is done"
        ) from None
    try:
        yield
    finally:
        lock.release()


def holder_text(holder: str) -> str:
    """`12345 podctl down` -> `podctl down (pid 12345)`."""
    pid, _, what = holder.partition(" ")
    return f"{what} (pid {pid})" if pid.isdigit() and what else holder or "another podctl command"


# -- running or not --------------------------------------------------------------------------------


def running(paths: PodPaths) -> bool:
    """Any part of the pod is up: its broker, its supervisor, its bridge or its tmux session."""
    if processes.supervisor_pid(paths) is not None or processes.bridge_pid(paths) is not None:
        return True
    if processes.broker_running(paths):
        return True
    return tmux.session_exists(tmux.server(), paths.pod)


def parts(paths: PodPaths) -> dict[str, bool]:
    """Which of the pod's three parts run (in the order `up` starts them)."""
    return {
        "broker": processes.broker_running(paths),
        "tmux session": tmux.session_exists(tmux.server(), paths.pod),
        "supervisor": processes.supervisor_pid(paths) is not None,
    }


def state_word(running_parts: dict[str, bool]) -> str:
    """`up`, `down`, or what runs of a pod that is partly up: `partial: broker only`,
    `partial: broker and tmux session` (an `up` that was interrupted, a session closed by hand)."""
    on = [name for name, is_on in running_parts.items() if is_on]
    if len(on) == len(running_parts):
        return "up"
    if not on:
        return "down"
    return f"partial: {on[0]} only" if len(on) == 1 else f"partial: {' and '.join(on)}"


def following_file(paths: PodPaths) -> Path | None:
    """The pod file the running pod follows: the one its broker was handed last (an `up` that did not
    finish records nothing, but its broker follows its file), else the recorded one."""
    live = _broker_status(paths) if processes.broker_running(paths) else None
    pod_file = live["pod_file"] if live is not None else None
    return Path(pod_file) if pod_file else recorded_file(paths)


def stop(paths: PodPaths) -> list[str]:
    """Stop the supervisor (first, so it restarts nothing), the tmux session and the broker.
    Call with the apply lock held. Returns what was running."""
    stopped = []
    if processes.stop(processes.supervisor_pid(paths)):
        stopped.append("supervisor")
    if processes.stop(processes.bridge_pid(paths)):
        stopped.append("bridge")
    srv = tmux.server()
    if tmux.session_exists(srv, paths.pod):
        tmux.kill_session(srv, paths.pod)
        stopped.append("tmux session")
    if processes.stop(processes.broker_pid(paths)):
        stopped.append("broker")
    return stopped


def delete(paths: PodPaths, force: bool = False) -> list[str]:
    """Stop everything and remove the pod's folder; only a folder podctl made is ever removed.

    The agents' worktrees go first, through git, and only when they hold no work that would be
    lost (or with `force`: their branches are kept). Returns what was said about them.
    """
    from podctl.pods.worktree import checkout_dir, record_file, records

    from . import worktrees

    if not paths.is_pod_folder():
        raise PodctlError(f"{paths.root} is not a pod folder made by podctl: nothing deleted")
    with applying(paths, "podctl delete"):
        removals = [worktrees.removal(paths, r) for r in records(paths.root)]
        refusal = worktrees.refusal(removals)
        if refusal and not force:
            raise PodctlError(f"pod {paths.pod} is not deleted: {refusal}")
        stop(paths)
        said = [worktrees.remove(paths, item, force=force) for item in removals]
        kept = [path for item in removals if item.problem is not None
                for path in (record_file(paths.root, item.record.agent), checkout_dir(paths.root, item.record.agent))
                if path.exists() or path.is_symlink()]
        _remove_folder(paths, kept)
    if kept:
        said.append(f"kept {', '.join(map(str, kept))} (left alone above); {paths.root} is no longer a pod:"
                    " remove what is left yourself")
    return said


def _remove_folder(paths: PodPaths, keep: list[Path]) -> None:
    """Remove the pod's folder, but for `keep` (entries of its worktrees folder). Symbolic links are
    removed, never followed."""
    from podctl.pods.worktree import folder

    if not keep:
        shutil.rmtree(paths.root)
        return
    trees = folder(paths.root)
    for entry in [*paths.root.iterdir(), *(trees.iterdir() if trees.is_dir() and not trees.is_symlink() else [])]:
        if entry in keep or entry == trees:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


# -- status as data -----------------------------------------------------------------------------------


def status(paths: PodPaths) -> dict[str, Any]:
    """The pod's parts and agents; from the broker when it runs, else from its store (read-only)."""
    from podctl.broker.queries import agents_of_a_pod_down
    from podctl.broker.readonly import ReadOnlyStore
    from podctl.broker.records import plain

    out: dict[str, Any] = {
        "pod": paths.pod, "state_dir": str(paths.root), "broker": "stopped", "supervisor": "stopped",
        "pod_file": str(recorded_file(paths) or "") or None,
    }
    if processes.supervisor_pid(paths) is not None:
        out["supervisor"] = "running"
    out["pod_file_problem"] = None
    srv = tmux.server()
    windows = tmux.windows(srv, paths.pod)
    out["session"] = "running" if tmux.session_exists(srv, paths.pod) else "stopped"
    agents: dict[str, dict[str, Any]] = {}
    live = _broker_status(paths)
    if live is not None:
        out["broker"] = "running"
        out["pod_file_problem"] = follow_problem(paths)
        agents = {a["name"]: plain(a) for a in live["agents"]}
        out["routes"] = live["routes"]
        out["pending_deliveries"] = live["pending_deliveries"]
        out["last_message_id"] = live["last_message_id"]
        out["usage"], out["budget"] = live.get("usage"), live.get("budget")
        if live.get("sites"):
            out["sites"] = live["sites"]
    else:
        with ReadOnlyStore(paths.db) as store:
            stored = store.overview()
            usage, settings = store.usage(0.0), store.settings()
        agents = {row["name"]: plain(row) for row in agents_of_a_pod_down(stored)}
        out["pending_deliveries"] = stored["unseen"]
        out["last_message_id"] = stored["last_message_id"]
        _add_stored_usage(out, agents, usage, settings)
    for name, window in windows.items():
        if name == tmux.TRANSCRIPT_WINDOW:
            continue
        entry = agents.setdefault(name, {"name": name, "state": "unknown"})
        entry["window"] = "exited" if window.dead else "running"
        if window.dead:
            entry["state"] = "stopped"
            entry["exit_status"] = window.exit_status
    places = applied_record(paths).get("agents") or {}
    for entry in agents.values():
        _add_details(paths, entry, out["broker"] == "running", places.get(entry["name"]))
    out["agents"] = list(agents.values()) + _removed_with_worktrees(paths, set(agents))
    return out


def _removed_with_worktrees(paths: PodPaths, listed: set[str]) -> list[dict[str, Any]]:
    """Agents no longer in the pod whose worktree is kept (with whatever work it holds): still listed."""
    from podctl.pods.worktree import records, summary

    out = []
    for record in records(paths.root):
        if record.agent in listed:
            continue
        tree = summary(paths.root, record.agent)
        if tree is not None:
            out.append({"name": record.agent, "state": "removed", "window": "none", "kept_worktree": _kept(tree)})
    return out


def _kept(tree: dict[str, Any]) -> dict[str, Any]:
    """A worktree no agent works in any more, with how to remove it."""
    return dict(tree, remove=f"git -C {tree['repo']} worktree remove {tree['path']}")


def _add_stored_usage(
    out: dict[str, Any], agents: dict[str, dict[str, Any]], rows: list[dict[str, Any]], settings: dict[str, Any]
) -> None:
    """Usage of a pod that is down, priced as the broker last priced it."""
    from podctl.pods.usage import report

    if not rows:
        out["usage"], out["budget"] = None, settings.get("limits")
        return
    summary = report(rows, settings.get("pricing"))
    out["usage"], out["budget"] = summary["total"], settings.get("limits")
    per_agent: dict[str, Any] = summary["agents"]  # type: ignore[assignment]
    for name, entry in agents.items():
        entry["usage"] = per_agent.get(name)


def _add_details(
    paths: PodPaths, entry: dict[str, Any], broker_running: bool, place: dict[str, Any] | None = None
) -> None:
    """What status adds to an agent from the pod's folder: why it stopped, where it works (`place`,
    as last applied), and its worktree: the one it works in, or one it left (`kept_worktree`)."""
    from podctl.pods.worktree import summary

    if entry.get("remote"):
        return  # it runs at another site: its state is what that site reported (docs/sites.md)
    entry.setdefault("window", "none")
    if entry["window"] == "none":
        entry["state"] = "stopped"
    if entry["state"] == "stopped":
        entry["stopped_reason"] = _stopped_reason(entry, broker_running)
        reason = exit_reason(paths, entry["name"])
        if reason:
            entry["reason"] = reason
    if place is not None:
        entry["workdir"] = place.get("workdir")
    tree = summary(paths.root, entry["name"])
    if tree is None:
        return
    if place is None or _works_in(place, Path(str(tree["path"]))):
        entry["worktree"] = tree
    else:
        entry["kept_worktree"] = _kept(tree)


def _works_in(place: dict[str, Any], tree: Path) -> bool:
    """The agent, as last applied, works in this worktree (its folder is the worktree or inside it)."""
    if place.get("branch") is None:
        return False
    workdir = Path(str(place.get("workdir") or ""))
    return tree == workdir or tree in workdir.parents


def _stopped_reason(agent: dict[str, Any], broker_running: bool) -> str:
    """Why a stopped agent is stopped, in a few words (its last screen, if kept, is `reason`)."""
    if agent["window"] == "exited":
        status = agent.get("exit_status")
        return f"its CLI exited with status {status}" if status is not None else "its CLI exited"
    if not broker_running:
        return "the pod is down"
    if agent["window"] == "none":
        return "no tmux window: `podctl up` starts it again"
    return "its CLI ended its session"


def _broker_status(paths: PodPaths) -> Status | None:
    try:
        token = paths.read_token(USER)
        with wire.Client(paths.socket, USER, token, timeout=5.0) as client:
            return client.call("status")
    except (OSError, wire.BrokerError):
        return None


def save_exit_screen(paths: PodPaths, agent: str) -> str:
    """Keep the last screen of an agent whose CLI exited (it goes when the pane is respawned)."""
    text = tmux.capture(tmux.server(), paths.pod, agent, lines=200)
    if text.strip():
        paths.exit_log(agent).write_text(text)
    return text


def exit_reason(paths: PodPaths, agent: str, lines: int = 4) -> dict[str, Any] | None:
    """The last lines an exited agent printed, and where to read more; None if nothing was kept."""
    path = paths.exit_log(agent)
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    kept = [line for line in kept if not line.startswith("Pane is dead")]
    if not kept:
        return None
    return {"last_lines": kept[-lines:], "more": f"less +G {path}"}
