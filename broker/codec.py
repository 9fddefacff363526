"""JSON and Unix sockets for the hook path, without importing `json` or `socket`.

`json` pulls in `re` (and with it `enum`, `functools`, ...) and `socket` pulls in `enum`: together
more than half of a hook's run time. The C halves of both (`_json`, `_socket`) are all a frame
needs. If this interpreter's `_json` does not look as expected, the standard modules are used.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

Socket = _socket.socket


def unix_socket() -> Socket:
    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)


class _DecoderContext:
    """The attributes `_json.make_scanner` reads from a decoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: ClassVar[dict[str, str]] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return _no_constant(name)


def _no_constant(name: str) -> float:
    """NaN and the infinities are not JSON (RFC 8259): a frame carrying them is rejected."""
    raise ValueError(f"{name} is not valid JSON (use a number or null)")


def _no_default(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_WHITESPACE = " \t\n\r"


def _fast() -> tuple[Callable[[object], str], Callable[[str], Any]]:
    import _json

    encoder = _json.make_encoder(None, _no_default, _json.encode_basestring, None, ":", ",", False, False, False)
    scanner = _json.make_scanner(_DecoderContext())  # type: ignore[arg-type]

    def dumps(value: object) -> str:
        return "".join(encoder(value, 0))

    def loads(text: str) -> Any:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = scanner(text, start)
        except StopIteration as exc:
            raise ValueError(f"not JSON at character {exc.value}") from None
        except SystemError:
            # Some faults (`{"a":1` cut short) make the C scanner build a json.decoder error, which
            # fails under `python -I -S` and surfaces as SystemError: it is still just not JSON.
            raise ValueError("not JSON (cut short?)") from None
        if text[end:].strip(_WHITESPACE):
            raise ValueError(f"extra data after JSON at character {end}")
        return value

    sample = {"a": [1, 2.5, "é\n\"", None, True, False], "b": {}}
    if loads(dumps(sample)) != sample or dumps(sample) != '{"a":[1,2.5,"é\\n\\"",null,true,false],"b":{}}':
        raise RuntimeError("unexpected _json")
    return dumps, loads


def _standard() -> tuple[Callable[[object], str], Callable[[str], Any]]:
    import json

    def dumps(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def loads(text: str) -> Any:
        return json.loads(text, parse_constant=_no_constant)

    return dumps, loads


try:
    dumps, loads = _fast()
except Exception:  # noqa: BLE001 - any surprise in the C accelerator: use the standard module
    dumps, loads = _standard()
