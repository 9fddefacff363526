"""Load a pod file into a PodSpec. Every error carries FILE:LINE:COL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import re

import yaml
from pydantic import ValidationError

from .spec import PodSpec


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
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PodFileError(Exception):
    """A pod file that cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_pod(path: str | Path) -> PodSpec:
    path = Path(path).resolve()
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=PodYamlLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PodFileError([Problem(str(path), line, col, f"bad YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise PodFileError([Problem(str(path), 1, 1, "a pod file must be a mapping")])
    data.setdefault("name", path.parent.name)
    try:
        spec = PodSpec.model_validate(data)
    except ValidationError as exc:
        raise PodFileError([Problem(str(path), 1, 1, str(exc))]) from exc
    return spec.model_copy(update={"source": path})
