"""Aligned tables with a header row, for the commands people read (`status`, `ls`, `templates`,
`rules list`). Standard library only: the fast path (cli/fast.py) prints them too.

A table is a list of columns and a list of row dicts, so a new column is one more `Column`. Colour
only on a terminal, never with `NO_COLOR` set or `TERM=dumb`; piped output is plain text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

BOLD, RESET = "\033[1m", "\033[0m"
COLOURS = {"green": "\033[32m", "yellow": "\033[33m", "red": "\033[31m", "dim": "\033[2m", "cyan": "\033[36m",
           "magenta": "\033[1;35m"}


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    colour: Callable[[str], str | None] | None = None
    """The colour name (COLOURS) of a cell, from its text; None: plain."""
    right: bool = False
    """Right-aligned (numbers)."""


def colour_wanted(stream: TextIO | None = None) -> bool:
    """Colour only for a person at a terminal: not piped, not NO_COLOR (https://no-color.org), not TERM=dumb."""
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def render(columns: Sequence[Column], rows: Sequence[dict[str, Any]], colour: bool, indent: str = "") -> list[str]:
    """The header line and one line per row, each column as wide as its widest cell."""
    cells = [[_text(row.get(col.key)) for col in columns] for row in rows]
    widths = [max([len(col.header), *(len(line[i]) for line in cells)]) for i, col in enumerate(columns)]
    last = len(columns) - 1
    header = "  ".join(col.header.ljust(widths[i]) if i < last else col.header for i, col in enumerate(columns))
    lines = [indent + (f"{BOLD}{header}{RESET}" if colour else header)]
    for line in cells:
        parts = []
        for i, (col, text) in enumerate(zip(columns, line, strict=True)):
            padded = text.rjust(widths[i]) if col.right else text if i == last else text.ljust(widths[i])
            name = col.colour(text) if colour and col.colour else None
            parts.append(f"{COLOURS[name]}{padded}{RESET}" if name in COLOURS else padded)
        lines.append(indent + "  ".join(parts).rstrip())
    return lines


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)
