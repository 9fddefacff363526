"""Edit a pod file's text (`podctl add`, `podctl remove`): only the lines of the agent concerned
change, every other byte stays as it was (comments, quotes, line width, flow style, indentation).

ruamel reads the file for the positions of its keys; the edit itself is a splice of whole lines.
Only an `agents:` mapping written in flow style (`agents: {a: {...}}`, not empty) is written
back by ruamel, which keeps comments and quotes but not every byte of that mapping.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from .errors import PodctlError
from .spec import NAME_RE, RESERVED_NAMES


class EditError(PodctlError):
    """An edit that cannot be made (a bad name, an unknown agent or cli)."""


@dataclass(frozen=True)
class Edit:
    text: str
    note: str = ""
    """How it was done, when that is not plain (an inherited agent dropped, routes written)."""


def _load(text: str, where: Path) -> CommentedMap:
    try:
        data = YAML().load(text)
    except YAMLError as exc:
        raise EditError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(data, CommentedMap):
        raise EditError(f"{where} is not a mapping")
    return data


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _scalar(value: str) -> str:
    """`value` as a YAML scalar on one line: plain when that reads back the same, else double-quoted."""
    if "\n" not in value and " #" not in value and not value.startswith(("#", " ")):
        try:
            if pyyaml.safe_load(f"k: {value}") == {"k": value}:
                return value
        except pyyaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)


class _Doc:
    """The file's lines and where its `agents:` entries are."""

    def __init__(self, text: str, where: Path) -> None:
        self.where = where
        self.data = _load(text, where)
        self.lines = text.splitlines(keepends=True)
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += "\n"
        self.agents: Any = self.data.get("agents")

    def text(self) -> str:
        return "".join(self.lines)

    def _after(self, key: str) -> int:
        """The line where the top-level key after `key` starts (the end of the file if none)."""
        keys = list(self.data)
        i = keys.index(key)
        return self.data.lc.key(keys[i + 1])[0] if i + 1 < len(keys) else len(self.lines)

    def _end(self, start: int, stop: int, indent: int) -> int:
        """Where an entry starting at line `start` ends: at `stop` (the next key), less the blank and
        comment lines just before it at or left of `indent` (they belong to what follows)."""
        end = stop
        while end - 1 > start:
            line = self.lines[end - 1]
            if line.strip() and not (line.lstrip().startswith("#") and _indent(line) <= indent):
                break
            end -= 1
        return end

    def block(self) -> bool:
        """Whether lines can be spliced: anything but a non-empty `agents:` mapping in flow style."""
        return not (isinstance(self.agents, CommentedMap) and self.agents.fa.flow_style() and len(self.agents))

    def span(self, name: str) -> tuple[int, int]:
        """The lines [start, end) of agent `name` in a block `agents:` mapping."""
        names = list(self.agents)
        i = names.index(name)
        line, col = self.agents.lc.key(name)
        stop = self.agents.lc.key(names[i + 1])[0] if i + 1 < len(names) else self._after("agents")
        return line, self._end(line, stop, col)

    def key_indent(self) -> tuple[int, int]:
        """The indentation of agent names and of their fields."""
        if isinstance(self.agents, CommentedMap) and len(self.agents) and not self.agents.fa.flow_style():
            col = self.agents.lc.key(next(iter(self.agents)))[1]
            for value in self.agents.values():
                if isinstance(value, CommentedMap) and len(value) and not value.fa.flow_style():
                    return col, value.lc.key(next(iter(value)))[1]
            return col, col + 2
        top = self.data.lc.key("agents")[1] if "agents" in self.data else 0
        return top + 2, top + 4

    def insert_agent(self, lines: list[str]) -> None:
        """Add entry lines at the end of the `agents:` mapping (made if missing; `agents: {}` becomes a block)."""
        if "agents" not in self.data:
            self.lines += ["agents:\n", *lines]
            return
        if isinstance(self.agents, CommentedMap) and len(self.agents):
            at = self.span(list(self.agents)[-1])[1]
        else:
            at = self.data.lc.key("agents")[0]
            line = self.lines[at]
            empty = re.compile(r"\{\s*\}").search(line, self.data.lc.key("agents")[1])
            if empty is not None:
                rest = line[empty.end():]
                self.lines[at] = line[: empty.start()].rstrip() + (rest if rest.strip() else "\n")
            at += 1
        self.lines[at:at] = lines


def _fallback(text: str, change: Any) -> str:
    """ruamel's round trip, for an `agents:` mapping in flow style: long lines kept, quotes kept,
    the file's own indentation."""
    data, indent, block_seq_indent = load_yaml_guess_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 1 << 16
    yaml.indent(mapping=indent or 2, sequence=indent or 2, offset=block_seq_indent or 0)
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    change(data)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def add_agent(text: str, where: Path, name: str, cli: str, role: str | None = None) -> Edit:
    if not NAME_RE.fullmatch(name) or name in RESERVED_NAMES:
        raise EditError(f"{name!r} is not a valid agent name: lowercase letters, digits and '-'; not user/all/podctl")
    from . import clis

    if cli not in clis.names():
        raise EditError(f"unknown cli {cli!r}: use one of {', '.join(clis.names())}")
    doc = _Doc(text, where)
    if isinstance(doc.agents, dict) and doc.agents.get(name) is not None:
        raise EditError(f"agent {name!r} is already in {where.name}")
    if isinstance(doc.agents, dict) and name in doc.agents:
        raise EditError(f"{where.name} drops agent {name!r} (`{name}: null`): remove that line first")
    if not doc.block():
        def put(data: CommentedMap) -> None:
            data["agents"][name] = CommentedMap(cli=cli, **({"role": role} if role else {}))

        return Edit(_fallback(text, put))
    key, field = doc.key_indent()
    lines = [f"{' ' * key}{name}:\n", f"{' ' * field}cli: {cli}\n"]
    if role:
        lines.append(f"{' ' * field}role: {_scalar(role)}\n")
    doc.insert_agent(lines)
    return Edit(doc.text())


def remove_agent(text: str, where: Path, name: str) -> Edit:
    """Remove agent `name`: its lines go; an agent the `extends` template gives is dropped with
    `NAME: null` instead (deleting the file's entry would leave the template's), and the template's
    routes are written without it when they named it."""
    from .load import PodFileError, inherited_agents, load_pod_text

    doc = _Doc(text, where)
    own = doc.agents if isinstance(doc.agents, dict) else {}
    try:
        inherited = inherited_agents(text, where)
        spec = load_pod_text(text, where)
    except PodFileError as exc:
        raise EditError(f"{where.name} does not load; fix it first:\n{exc}") from None
    if name not in spec.agents:
        raise EditError(f"no agent {name!r} in {where.name} (agents: {', '.join(spec.agents) or 'none'})")
    if name not in inherited:
        if not doc.block():
            return Edit(_fallback(text, lambda data: data["agents"].pop(name)))
        start, end = doc.span(name)
        del doc.lines[start:end]
        return Edit(doc.text())
    key, _ = doc.key_indent()
    if name in own and not doc.block():
        return Edit(_fallback(text, lambda data: data["agents"].__setitem__(name, None)))
    if name in own:
        start, end = doc.span(name)
        doc.lines[start:end] = [f"{' ' * key}{name}: null\n"]
    else:
        doc.insert_agent([f"{' ' * key}{name}: null\n"])
    note = f"{name} comes from the template {spec.extends}: {where.name} now drops it (`{name}: null`)"
    routes = [r for r in spec.routes if name in r.to or name in (r.from_ or [])]
    if routes and "routes" not in doc.data:
        kept = _routes_without(spec.routes, name)
        doc.lines.append(f"routes:   # the template's routes without {name} (podctl remove)\n")
        doc.lines += [f"  - {pyyaml.safe_dump(r, default_flow_style=True, width=1 << 16, sort_keys=False).strip()}\n"
                      for r in kept]
        note += f", and has the template's routes without it ({', '.join(r.name for r in routes)})"
    return Edit(doc.text(), note)


def _routes_without(routes: Any, name: str) -> list[dict[str, Any]]:
    """The routes as the pod file writes them, without agent `name` (a route left with nobody is dropped)."""
    kept = []
    for route in routes:
        entry: dict[str, Any] = {"name": route.name}
        if route.from_ is not None:
            entry["from"] = [a for a in route.from_ if a != name]
        entry["to"] = [a for a in route.to if a != name]
        entry["mode"], entry["timeout"] = route.mode, route.timeout
        if entry["to"] and entry.get("from", True):
            kept.append(entry)
    return kept
