"""YAML with positions: plain data (like `safe_load`) plus the line and column of every node.

Positions are keyed by the path to a value (`("agents", "writer", "cli")`); `Positions.keys` has
where each mapping key itself was written, which is where an unknown key is reported. Duplicate
keys, which PyYAML silently resolves to the last one, are collected as errors.

Hostile YAML is refused while it is composed, before anything is expanded: an alias is the same
node object reused, so building plain data from it copies the anchored subtree once per use; a
few nested aliases ("billion laughs") expand to billions of nodes, an anchor used inside itself
never ends, and deep nesting exhausts the Python stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]
SAFE_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists (a pod file needs about six)."""
MAX_NODES = 100_000
"""Most values (nodes) a file may hold once its aliases are expanded; a pod file has a few hundred."""


@dataclass(frozen=True)
class Mark:
    line: int
    col: int


def _mark_of(mark: yaml.Mark) -> Mark:
    return Mark(mark.line + 1, mark.column + 1)


def _mark(node: yaml.Node) -> Mark:
    return _mark_of(node.start_mark)


class YamlLimit(ValueError):
    """YAML refused because it nests too deep or its aliases expand too far."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.mark = mark


class PodYamlLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader with YAML 1.2 booleans and limits on nesting and alias expansion.

    YAML 1.1 reads `on`, `off`, `yes`, `no` as booleans, which would turn a rule's `on:` key
    into `True`. Like safe_load, it constructs no Python objects.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._size: dict[int, int] = {}
        self._height: dict[int, int] = {}
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._check_alias(event, node)
            return node
        nests = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise YamlLimit(f"more than {MAX_NODES} values: a pod file needs far fewer", _mark_of(event.start_mark))
        if nests and self._depth >= MAX_DEPTH:
            raise YamlLimit(
                f"nested deeper than {MAX_DEPTH} levels: a pod file needs only a few; flatten this value",
                _mark_of(event.start_mark),
            )
        anchor = event.anchor
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += nests
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= nests
            self._open_anchors.discard(anchor)
        children = _children(node)
        self._size[id(node)] = 1 + sum(self._size[id(c)] for c in children)
        self._height[id(node)] = nests + max((self._height[id(c)] for c in children), default=0)
        return node

    def _check_alias(self, event: yaml.AliasEvent, node: yaml.Node) -> None:
        """Refuse an alias inside its own anchor, or one that expands too far or too deep."""
        mark = _mark_of(event.start_mark)
        if event.anchor in self._open_anchors:
            raise YamlLimit(
                f"alias *{event.anchor} is used inside its own anchor &{event.anchor} (a recursive alias,"
                " which never ends): write the value out instead",
                mark,
            )
        self._nodes += self._size[id(node)]
        if self._nodes > MAX_NODES:
            raise YamlLimit(
                f"aliases expand to more than {MAX_NODES} values here (aliases of aliases multiply:"
                f" a 'billion laughs'); use fewer aliases or write the values out",
                mark,
            )
        if self._depth + self._height[id(node)] > MAX_DEPTH:
            raise YamlLimit(
                f"alias *{event.anchor} nests deeper than {MAX_DEPTH} levels once expanded; flatten the anchored value",
                mark,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


PodYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PodYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class DuplicateKey:
    """A key written twice in one mapping; the later value is kept, as PyYAML does."""

    key: str
    mark: Mark
    first: Mark

    def __str__(self) -> str:
        return f"duplicate key {self.key!r} (first written at line {self.first.line})"


@dataclass
class Positions:
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)


def load_with_positions(text: str) -> tuple[Any, Positions]:
    """Parse YAML text; raises yaml.YAMLError for bad YAML and YamlLimit for hostile YAML."""
    loader = PodYamlLoader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    positions = Positions()
    if node is None:
        return None, positions
    constructor = PodYamlLoader("")

    def build(node: yaml.Node, path: Path) -> Any:
        positions.values[path] = _mark(node)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in SAFE_COLLECTION_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"tag {node.tag!r} is not allowed in a pod file", node.start_mark
            )
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            seen: dict[Any, Mark] = {}
            for key_node, value_node in node.value:
                key = build(key_node, (*path, "<key>"))
                if isinstance(key, (list, dict)):
                    raise yaml.constructor.ConstructorError(
                        None, None, "a mapping key must be a plain value", key_node.start_mark
                    )
                if key in seen:
                    positions.duplicates.append(DuplicateKey(str(key), _mark(key_node), seen[key]))
                seen.setdefault(key, _mark(key_node))
                positions.keys[(*path, key)] = _mark(key_node)
                out[key] = build(value_node, (*path, key))
            positions.values.pop((*path, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return constructor.construct_object(node, deep=True)
        except ValueError as exc:
            reason = str(exc).split(";")[0]
            raise yaml.constructor.ConstructorError(None, None, f"cannot read this value: {reason}", node.start_mark) from exc

    return build(node, ()), positions
