"""Every example pod file in examples/ validates (its `script:` files and everything it names)."""

from __future__ import annotations

from pathlib import Path

import pytest
from podctl.pods.load import load_pod

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*/*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[f"{p.parent.name}/{p.name}" for p in EXAMPLES])
def test_every_example_pod_validates(path: Path) -> None:
    spec = load_pod(path)
    assert spec.agents


def test_the_sites_example_spans_two_sites() -> None:
    spec = load_pod(REPO / "examples" / "sites" / "pod.yaml")
    assert spec.sites() == ["build", "laptop"] and list(spec.local_agents("build")) == ["reviewer", "tester"]
