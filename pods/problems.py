"""Problems in pod files, each at FILE:LINE:COL, and where a path in the merged data was written."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from .errors import PodctlError
from .positions import Mark, Positions


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PodFileError(PodctlError):
    """A pod file that cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Layer:
    file: str
    positions: Positions


class Where:
    """Positions across the files of an `extends` chain, most specific file first."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers

    def _find(self, path: tuple[Any, ...], keys: bool) -> tuple[str, Mark]:
        path = tuple(path)
        for k in range(len(path), -1, -1):
            prefix = path[:k]
            for layer in self.layers:
                table = layer.positions.keys if keys and k == len(path) else layer.positions.values
                if prefix in table:
                    return layer.file, table[prefix]
        return self.layers[0].file, Mark(1, 1)

    def problem(self, path: tuple[Any, ...], message: str, at_key: bool = False) -> Problem:
        file, mark = self._find(path, at_key)
        return Problem(file, mark.line, mark.col, message)

    def in_order(self, problems: list[Problem]) -> list[Problem]:
        """Each problem once, by file (the pod file first, then its templates), line and column."""
        rank = {layer.file: i for i, layer in enumerate(self.layers)}
        unique = list(dict.fromkeys(problems))
        return sorted(unique, key=lambda p: (rank.get(p.file, len(rank)), p.line, p.col))


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
