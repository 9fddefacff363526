from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import podctl


class Pods:
    """Brings pods up with the real CLI and always takes them down again."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def up(self, pod_file: Path, *extra: str) -> str:
        out = podctl("up", str(pod_file), "--no-attach", *extra).stdout
        self.names.add(out.split(":", 1)[0].removeprefix("pod ").strip())
        return out

    def down_all(self) -> None:
        for name in self.names:
            podctl("down", name, check=False)


@pytest.fixture
def pods() -> Iterator[Pods]:
    handle = Pods()
    yield handle
    handle.down_all()
