"""How a rule's `when: {changed: [...]}` globs match paths (docs/pod-file.md, "Which files a rule sees")."""

from __future__ import annotations

import pytest
from podctl.pods.globs import GlobError, compile_glob, matches

CASES = [
    # glob, paths it matches, paths it does not
    ("src/*.py", ["src/a.py"], ["src/deep/a.py", "a.py", "lib/src/a.py"]),
    ("src/**", ["src/a.py", "src/deep/er/a.py"], ["src", "lib/src/a.py", "srcs/a.py"]),
    ("*.py", ["a.py", "src/a.py", "a/b/c.py"], ["a.pyc", "src/a.txt"]),
    ("/*.py", ["a.py"], ["src/a.py"]),
    ("**/test_*.py", ["test_a.py", "x/y/test_b.py"], ["x/atest_b.py"]),
    ("docs/**/*.md", ["docs/a.md", "docs/x/y/b.md"], ["a.md", "docs/a.txt"]),
    ("build/", ["build/x", "src/build/y/z"], ["build", "builds/x"]),
    ("src/gen/", ["src/gen/a.c"], ["gen/a.c", "x/src/gen/a.c"]),
    ("*", ["a", "a/b/c"], []),
    ("**", ["a", "a/b/c"], []),
    ("Makefile", ["Makefile", "sub/Makefile"], ["Makefile.am"]),
    ("f[0-9].txt", ["f1.txt", "d/f2.txt"], ["fa.txt"]),
    ("f[!0-9].txt", ["fa.txt"], ["f1.txt", "f/.txt"]),
    ("a?c", ["abc"], ["a/c", "ac"]),
    ("a**b", ["axxb"], ["ax/b"]),
]


@pytest.mark.parametrize(("glob", "yes", "no"), CASES, ids=[c[0] for c in CASES])
def test_a_star_stays_within_a_folder_and_a_double_star_crosses_folders(glob: str, yes: list[str], no: list[str]) -> None:
    assert [p for p in yes if not matches(p, [glob])] == [], compile_glob(glob).pattern
    assert [p for p in no if matches(p, [glob])] == [], compile_glob(glob).pattern


@pytest.mark.parametrize(("glob", "why"), [
    ("", "an empty glob"), ("/", "names no file"), ("src/[ab", "opens a [set] it never closes"),
    ("a[z-a]", "bad character range"),
])
def test_an_unusable_glob_says_why(glob: str, why: str) -> None:
    with pytest.raises(GlobError, match=why.replace("[", r"\[")):
        compile_glob(glob)
