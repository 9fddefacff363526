"""`podctl graph`: a pod's topology as text, Mermaid and DOT, for every built-in template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from podctl.pods import catalog
from podctl.pods.graph import as_dot, as_mermaid, as_text, topology
from podctl.pods.load import load_pod

from ..helpers import podctl, write_pod

MERMAID_LINE = re.compile(
    r'  (?:[a-z]_[a-z0-9_]+|any)(?:\["[^"]*"\]|\{\{"[^"]*"\}\}|\(\["[^"]*"\]\))'
    r'|  (?:[a-z]_[a-z0-9_]+|any) (?:-- "[^"]*" -->|-\. "[^"]*" \.->) (?:[a-z]_[a-z0-9_]+|any)'
)
DOT_LINE = re.compile(r'  "(?:[^"\\]|\\.)*"(?: -> "(?:[^"\\]|\\.)*")? \[[^\]]*\];')


def from_template(tmp_path: Path, template: str) -> Path:
    return write_pod(tmp_path / template, f"name: {template}\nextends: {template}\n")


@pytest.mark.parametrize("template", catalog.names())
def test_every_template_draws_its_agents_routes_and_rules(tmp_path: Path, template: str) -> None:
    spec = load_pod(from_template(tmp_path, template))
    text, mermaid, dot = as_text(topology(spec)), as_mermaid(topology(spec)), as_dot(topology(spec))
    for name, agent in spec.agents.items():
        assert re.search(rf"^  {re.escape(name)} +{agent.cli} ", text, re.MULTILINE)
        assert f'a_{name.replace("-", "_")}["{name}<br/><small>{agent.cli}</small>"]' in mermaid
        assert f'"{name}" [label="{name}\\n{agent.cli}"];' in dot
    for route in spec.routes:
        assert f"-> {route.name} -> {', '.join(route.to)}" in text
        for member in route.to:
            assert f'r_{route.name.replace("-", "_")} -- "{route.mode}" --> a_{member.replace("-", "_")}' in mermaid
            assert f'"route:{route.name}" -> "{member}" [label="{route.mode}"];' in dot
    for rule in spec.rules:
        assert f"{rule.name} (on {rule.on}" in text
        assert f'. "{"hand-off: " if rule.handoff else ""}{rule.name} (on {rule.on}' in mermaid
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart LR" and all(MERMAID_LINE.fullmatch(line) for line in lines[1:]), mermaid
    body = dot.splitlines()
    assert body[0] == f'digraph "{spec.name}" {{' and body[-1] == "}", dot
    assert all(DOT_LINE.fullmatch(line) for line in body[3:-1]), dot


def test_review_pod_reads_as_a_person_would_draw_it(tmp_path: Path) -> None:
    out = podctl("graph", str(from_template(tmp_path, "review-pod"))).stdout
    assert "  writer -> review -> codex-reviewer, gemini-reviewer   (mode all, timeout 10m)" in out
    assert "  auto-review (on turn_end, max 3 rounds, cooldown 30s): writer -> ask review" in out
    relay = podctl("graph", "--format", "mermaid", str(from_template(tmp_path, "relay"))).stdout
    assert 'a_primary -. "hand-off: rate-limit-handoff (on pattern)" .-> a_backup' in relay


def test_routes_without_from_and_rules_without_agent_start_at_any_agent(tmp_path: Path) -> None:
    pod = write_pod(tmp_path / "open", (
        "name: open\nagents:\n  a: {cli: script}\n  b: {cli: script}\n  c: {cli: script}\n"
        "routes:\n  - {name: help, to: [b, c], mode: first}\n"
        "rules:\n  - {name: check, on: turn_end, ask: [c]}\n"
    ))
    mermaid = podctl("graph", "-f", "mermaid", str(pod)).stdout
    assert 'any(["any agent"])' in mermaid and 'any -- "asks" --> r_help' in mermaid
    assert 'any -. "check (on turn_end, max 3 rounds)" .-> a_c' in mermaid
    dot = podctl("graph", "-f", "dot", str(pod)).stdout
    assert '"*" [shape=ellipse, label="any agent"];' in dot


def test_a_bad_format_or_file_is_a_clear_error(tmp_path: Path) -> None:
    pod = from_template(tmp_path, "pair")
    bad = podctl("graph", "-f", "svg", str(pod), check=False)
    assert bad.returncode == 1 and "--format must be one of text, mermaid, dot" in bad.stderr
    missing = podctl("graph", str(tmp_path / "nope.yaml"), check=False)
    assert missing.returncode == 1 and f"no pod file {tmp_path / 'nope.yaml'}" in missing.stderr
