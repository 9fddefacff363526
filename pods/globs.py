"""Path globs of rules' `when: {changed: [...]}`, matched the way .gitignore patterns are.

- `*` matches within one path segment (never `/`), `?` one character of a segment, `[abc]` and
  `[!abc]` one character of a set;
- `**` as a whole segment crosses segments: `src/**` is everything under `src/`, `**/test_*.py`
  a test file in any folder, `a/**/b` `b` in `a` or in any folder under it; `**` elsewhere is `*`;
- a pattern with no `/` but at its end matches a name at any depth (`*.py`, `Makefile`); one with a
  `/` is relative to the agent's workdir (`src/*.py` is `src/a.py`, not `src/x/a.py`); a leading
  `/` anchors a pattern without another one (`/*.py`: the workdir's own files);
- a pattern ending in `/` is a folder: everything under it (`build/` at any depth, `src/gen/` there).

Standard library only: the pod file checks compile every glob, the broker matches with them.
"""

from __future__ import annotations

import re
from functools import lru_cache


class GlobError(ValueError):
    """A glob that cannot be used, with why."""


def _segment(part: str) -> str:
    """The regex of one path segment's pattern (no `/` in it)."""
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "*":
            while i + 1 < len(part) and part[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            start = i + 1
            negate = part[start: start + 1] == "!"
            start += negate
            end = part.find("]", start + 1)  # a ] first in the set is one of its characters
            if end < 0:
                raise GlobError("opens a [set] it never closes: close it with ], or write [[] for a literal [")
            body = "".join(ch if ch == "-" else re.escape(ch) for ch in part[start:end])
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The regex a path (relative to the workdir, `/`-separated) must fully match; raises GlobError."""
    if not pattern or not pattern.strip():
        raise GlobError("an empty glob matches nothing: write a path pattern such as src/** or *.py")
    body = pattern
    folder = body.endswith("/")
    body = body.rstrip("/")
    anchored = body.startswith("/") or "/" in body
    body = body.lstrip("/")
    if not body:
        raise GlobError(f"{pattern!r} names no file: write a path pattern such as src/** or *.py")
    parts = body.split("/")
    if folder:
        parts.append("**")
    if not anchored:
        parts.insert(0, "**")
    regex, last = "", len(parts) - 1
    try:
        for i, part in enumerate(parts):
            if part == "**":
                regex += ".*" if i == last else "(?:[^/]+/)*"
            else:
                regex += _segment(part) + ("/" if i < last else "")
        return re.compile(regex)
    except GlobError as exc:
        raise GlobError(f"{pattern!r} {exc}") from None
    except re.error as exc:
        raise GlobError(f"{pattern!r} is not a usable glob: {exc.msg}") from None


def matches(path: str, patterns: list[str]) -> bool:
    """Whether the relative path matches any of the globs."""
    return any(compile_glob(p).fullmatch(path) for p in patterns)
