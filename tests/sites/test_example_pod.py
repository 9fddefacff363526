"""The sites example spans its two sites (tests/test_docs.py checks that every example validates)."""

from __future__ import annotations

from pathlib import Path

from podctl.pods.load import load_pod

REPO = Path(__file__).resolve().parents[2]


def test_the_sites_example_spans_two_sites() -> None:
    spec = load_pod(REPO / "examples" / "sites" / "pod.yaml")
    assert spec.sites() == ["build", "laptop"] and list(spec.local_agents("build")) == ["reviewer", "tester"]
