"""The hook's limits: one total deadline whatever stalls (stdin, the broker), any input exits 0,
a bounded injection however much is queued, and frames that are valid JSON only."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from podctl.broker import codec, wire
from podctl.hooks.adapter import HOOKS_DIR

from ..helpers import BrokerProcess


def hook_command(state: Path, agent: str, cli: str = "claude", event: str = "PostToolUse") -> list[str]:
    return [sys.executable, "-I", "-S", str(HOOKS_DIR / "fast.py"), "--state", str(state), "--agent", agent, cli, event]


def hook_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **overrides}


def fake_state(root: Path, agent: str = "bob") -> Path:
    """A state folder laid out like a pod's, with no broker behind it."""
    (root / "agents" / agent).mkdir(parents=True)
    (root / "agents" / agent / "token").write_text("t\n")
    (root / "logs").mkdir()
    return root


def test_frames_are_strict_json() -> None:
    for text in ("NaN", "[1, Infinity]", '{"a": -Infinity}'):
        with pytest.raises(ValueError, match="not valid JSON"):
            codec.loads(text)
    with pytest.raises(ValueError):
        codec.dumps({"a": math.nan})
    with pytest.raises(ValueError):
        wire.decode(b'{"v": 1, "id": NaN}')
    dumps, loads = codec._standard()
    with pytest.raises(ValueError, match="not valid JSON"):
        loads("[NaN]")
    with pytest.raises(ValueError):
        dumps([math.inf])
    assert codec.loads('{"a": [1.5, -2e3, null]}') == {"a": [1.5, -2e3, None]}
