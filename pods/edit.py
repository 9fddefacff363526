"""Edit a pod file in place (`podctl add`, `podctl remove`), keeping its comments and layout."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .errors import PodctlError
from .spec import NAME_RE, RESERVED_NAMES


class EditError(PodctlError):
    """An edit that cannot be made (a bad name, an unknown agent or cli)."""


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _read(path: Path) -> tuple[YAML, CommentedMap]:
    yaml = _yaml()
    data = yaml.load(path.read_text(encoding="utf-8"))
    if not isinstance(data, CommentedMap):
        raise EditError(f"{path} is not a mapping")
    return yaml, data


def add_agent(path: Path, name: str, cli: str, role: str | None = None) -> None:
    if not NAME_RE.fullmatch(name) or name in RESERVED_NAMES:
        raise EditError(f"{name!r} is not a valid agent name: lowercase letters, digits and '-'; not user/all/podctl")
    from . import clis

    if cli not in clis.names():
        raise EditError(f"unknown cli {cli!r}: use one of {', '.join(clis.names())}")
    yaml, data = _read(path)
    agents = data.get("agents")
    if agents is None:
        agents = data["agents"] = CommentedMap()
    if name in agents:
        raise EditError(f"agent {name!r} is already in {path}")
    entry = CommentedMap(cli=cli)
    if role:
        entry["role"] = role
    agents[name] = entry
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)


def remove_agent(path: Path, name: str) -> None:
    yaml, data = _read(path)
    agents = data.get("agents") or {}
    if name not in agents:
        known = ", ".join(agents) or "none"
        raise EditError(f"no agent {name!r} in {path} (agents: {known})")
    del agents[name]
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)
