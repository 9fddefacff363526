"""The regression index (tests/regressions.py) names only tests that exist: a renamed or deleted test
would leave its defect unguarded without anyone noticing."""

from __future__ import annotations

import ast
from pathlib import Path

from .regressions import REGRESSIONS

REPO = Path(__file__).resolve().parents[1]


def test_every_test_the_regression_index_names_exists() -> None:
    missing = []
    defined: dict[str, set[str]] = {}
    for defect, tests in REGRESSIONS.items():
        assert tests, f"{defect}: no test guards it"
        for node_id in tests:
            file, _, name = node_id.partition("::")
            if file not in defined:
                path = REPO / file
                tree = ast.parse(path.read_text(encoding="utf-8")) if path.is_file() else ast.Module(body=[], type_ignores=[])
                defined[file] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
            if name not in defined[file]:
                missing.append(f"{defect}: {node_id}")
    assert not missing, "the regression index names tests that do not exist: " + "; ".join(missing)
