"""The plain argument check (broker/args.py) lets through exactly what strict pydantic accepts: a
looser check would let a bad argument reach a group commit, a stricter one would only cost speed
(it falls back to pydantic), so both directions are compared over each plain type's edge values."""

from __future__ import annotations

from typing import Any

import pytest
from podctl.broker.args import INT64_MAX, MAX_NAME, MAX_RECIPIENTS, PLAIN, checked
from pydantic import ConfigDict, TypeAdapter, ValidationError

EDGES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 18, INT64_MAX, INT64_MAX + 1, -INT64_MAX - 1, -INT64_MAX - 2, 1.0, 0.5,
    float("nan"), "", "a", "7", "0", "12345678901234567890", "123456789012345678", "x" * 16, "x" * 17,
    "x" * MAX_NAME, "x" * (MAX_NAME + 1), "x" * 128, "x" * 129, "\u00b2", "\u0661", "1\n", " 1",
    [], ["a"], ["a"] * MAX_RECIPIENTS, ["a"] * (MAX_RECIPIENTS + 1), [""], ["x" * (MAX_NAME + 1)], [1], ("a",),
    {"a": 1}, b"a",
]


def pydantic_accepts(kind: Any, value: Any) -> bool:
    try:
        TypeAdapter(kind, config=ConfigDict(strict=True)).validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("kind", list(PLAIN), ids=lambda k: str(k)[:60])
def test_the_plain_check_accepts_exactly_what_strict_pydantic_accepts(kind: object) -> None:
    wrong = [v for v in EDGES if PLAIN[kind](v) != pydantic_accepts(kind, v)]
    assert not wrong, f"the plain check and pydantic disagree on {wrong!r}"


class Part:
    @checked
    def op_thing(self, agent: str, name: str, count: int = 1, note: str | None = None) -> dict[str, Any]:
        return {"name": name, "count": count, "note": note}


@pytest.mark.parametrize("args", [
    {"name": "a"}, {"name": "a", "count": 2, "note": None}, {"name": 1}, {"count": 2}, {"name": "a", "other": 1},
    {"name": "a", "count": True}, {"name": "a", "note": 3},
])
def test_a_checked_operation_answers_as_pydantic_alone_would(args: dict[str, Any]) -> None:
    """Plainly right arguments skip pydantic; every other call gets pydantic's verdict and words."""
    strict = Part.op_thing.__wrapped__  # type: ignore[attr-defined]  # functools.wraps sets it; typeshed's callables do not declare it
    from pydantic import validate_call

    alone = validate_call(config=ConfigDict(strict=True))(strict)
    try:
        expected: Any = alone(Part(), "agent", **args)
    except ValidationError as exc:
        expected = str(exc)
    try:
        got: Any = Part().op_thing("agent", **args)
    except ValidationError as exc:
        got = str(exc)
    assert got == expected
