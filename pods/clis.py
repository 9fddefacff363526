"""The registry of agent CLIs: the entry-point group `podctl.adapters`.

Every CLI podctl can run, the built-in ones included, is an adapter object registered under this
group (pyproject.toml: `claude = "podctl.hooks.claude:ADAPTER"`). Validation, the JSON Schema,
`podctl add`, `init`, `doctor`, `up` and the tests all read this one list; a package that
registers an adapter here is accepted everywhere with no change to podctl (docs/adapters.md).

The registry hands out `CliAdapter`s: what this layer reads of an adapter. The whole shape, with the
defaults of its optional members, is `podctl.hooks.adapter.Adapter`, which every adapter inherits and
`hooks.adapter.get_adapter` returns; it stays in hooks/ because it speaks of hooks, launches and
usage files, and the layers import one way (pods <- hooks).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class CliAdapter(Protocol):
    """What the registry and the pod file's checks read of an adapter (the rest: hooks/adapter.py)."""

    @property
    def name(self) -> str: ...

    @property
    def takes_script(self) -> bool: ...

    @property
    def permission_modes(self) -> Mapping[str, object]:
        """Its modes for the pod file's `permissions` (what each is: hooks.adapter.PermissionMode)."""

    @property
    def permission_flags(self) -> tuple[str, ...]: ...


@cache
def adapter(name: str) -> CliAdapter:
    """The adapter object registered for `name` (its whole shape: `podctl.hooks.adapter.Adapter`)."""
    entry = _registered().get(name)
    if entry is None:
        raise UnknownCli(f"unknown cli {name!r}: podctl knows {', '.join(names()) or 'none'} (entry points {GROUP})")
    try:
        loaded = entry.load()
    except Exception as exc:
        raise UnknownCli(f"the adapter of cli {name!r} ({entry.value}) cannot be loaded: {exc}") from exc
    if not isinstance(loaded, CliAdapter):
        raise UnknownCli(f"the adapter of cli {name!r} ({entry.value}) is no adapter: its class must inherit Adapter"
                         " (podctl.hooks.adapter; docs/adapters.md, \"Writing an adapter\")")
    return loaded


def takes_script(name: str) -> bool:
    """Whether agents of this CLI take a `script:` field (only the built-in script agent does)."""
    try:
        return adapter(name).takes_script
    except UnknownCli:
        return False
