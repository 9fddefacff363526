"""Load a pod file into a PodSpec. Every error carries FILE:LINE:COL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from .spec import PodSpec


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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
