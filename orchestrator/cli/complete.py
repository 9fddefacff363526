"""Shell completion of the names people type: pods, a pod's agents, built-in templates, CLIs.

Read from the state folder and the package only (no broker, no pod-file loading): completion runs
on every Tab and must answer at once, even for a pod that is down. A failure completes nothing.
"""

from __future__ import annotations

import os

import typer
from podctl.broker.paths import USER, PodPaths, valid_pod_name


def pods(incomplete: str) -> list[str]:
    """The pods in the state folder."""
    from podctl.orchestrator.podref import known_pods

    try:
        return [name for name in known_pods() if name.startswith(incomplete)]
    except OSError:
        return []


def agents(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    """The agents of the pod named earlier on the command line (the folders its broker made).

    The pod is taken from the parsed arguments, or else from the words typed so far (the shell's
    completion variables): a command line that ends in an option waiting for its value
    (`send POD --to <Tab>`) is not parsed."""
    pod = _pod_named(ctx, args)
    if pod is None:
        return []
    folders = sorted(p.name for p in PodPaths.of(pod).agents.iterdir() if p.is_dir())
    return [name for name in folders if name != USER and name.startswith(incomplete)]


def _pod_named(ctx: typer.Context, args: list[str]) -> str | None:
    """The first pod named on the command line whose agents' folder exists."""
    named = ctx.params.get("pod")
    words = args or os.environ.get("COMP_WORDS", os.environ.get("_TYPER_COMPLETE_ARGS", "")).split()
    candidates = [str(named)] if named else [word for word in words[1:] if valid_pod_name(word)]
    return next((pod for pod in candidates if PodPaths.of(pod).agents.is_dir()), None)


def recipients(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    """What `send --to` takes: the pod's agents, its routes (as its broker last applied them) and `all`."""
    pod = _pod_named(ctx, args)
    if pod is None:
        return []
    names = agents(ctx, args, "")
    from podctl.broker.readonly import ReadOnlyStore
    from podctl.pods.errors import PodctlError

    try:
        with ReadOnlyStore(PodPaths.of(pod).db) as store:
            names += [str(route) for route in store.settings().get("routes") or []]
    except (PodctlError, OSError, ValueError):
        pass  # a store that cannot be read: the agents and `all` only
    return [name for name in [*names, "all"] if name.startswith(incomplete)]


def templates(incomplete: str) -> list[str]:
    """The built-in templates a pod file can `extends:`."""
    from podctl.pods import catalog

    return [name for name in catalog.names() if name.startswith(incomplete)]


def clis(incomplete: str) -> list[str]:
    """The registered agent CLIs."""
    from podctl.pods import clis as registry

    return [name for name in registry.names() if name.startswith(incomplete)]
