"""The registry of agent CLIs: the entry-point group `podctl.adapters`.

Every CLI podctl can run, the built-in ones included, is an adapter object registered under this
group (pyproject.toml: `claude = "podctl.hooks.claude:ADAPTER"`). Validation, the JSON Schema,
`podctl add`, `init`, `doctor`, `up` and the tests all read this one list; a package that
registers an adapter here is accepted everywhere with no change to podctl (docs/adapters.md).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import PodctlError

GROUP = "podctl.adapters"


class UnknownCli(PodctlError):
    pass


@cache
def _registered() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name)}


def names() -> list[str]:
    """Every registered CLI, sorted."""
    return list(_registered())


@cache
def adapter(name: str) -> Any:
    """The adapter object registered for `name` (see hooks/adapter.py for its shape)."""
    entry = _registered().get(name)
    if entry is None:
        raise UnknownCli(f"unknown cli {name!r}: podctl knows {', '.join(names()) or 'none'} (entry points {GROUP})")
    try:
        return entry.load()
    except Exception as exc:
        raise UnknownCli(f"the adapter of cli {name!r} ({entry.value}) cannot be loaded: {exc}") from exc


def takes_script(name: str) -> bool:
    """Whether agents of this CLI take a `script:` field (only the built-in script agent does)."""
    try:
        return bool(getattr(adapter(name), "takes_script", False))
    except UnknownCli:
        return False
