"""YAML with positions: plain data (like `safe_load`) plus the line and column of every node.

Positions are keyed by the path to a value (`("agents", "writer", "cli")`); for mapping keys,
`Positions.key(path)` gives where the key itself was written, which is where an unknown key is
reported. Duplicate keys, which PyYAML silently resolves to the last one, are errors here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]
SAFE_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class PodYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans.

    YAML 1.1 reads `on`, `off`, `yes`, `no` as booleans, which would turn a rule's `on:` key
    into `True`. Like safe_load, it constructs no Python objects.
    """


PodYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PodYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class Mark:
    line: int
    col: int


@dataclass
class Positions:
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def at(self, path: Path) -> Mark:
        """The position of the value at `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Mark(1, 1))

    def key(self, path: Path) -> Mark:
        """Where the mapping key ending `path` was written (falls back to the value)."""
        return self.keys.get(tuple(path)) or self.at(path)


class DuplicateKey(ValueError):
    def __init__(self, key: str, mark: Mark, first: Mark) -> None:
        super().__init__(f"duplicate key {key!r} (first written at line {first.line})")
        self.mark = mark


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def load_with_positions(text: str) -> tuple[Any, Positions]:
    """Parse YAML text; raises yaml.YAMLError for bad YAML and DuplicateKey for repeated keys."""
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
                    raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value", key_node.start_mark)
                if key in seen:
                    raise DuplicateKey(str(key), _mark(key_node), seen[key])
                seen[key] = _mark(key_node)
                positions.keys[(*path, key)] = _mark(key_node)
                out[key] = build(value_node, (*path, key))
            positions.values.pop((*path, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    return build(node, ()), positions
