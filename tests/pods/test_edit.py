"""`podctl add` and `podctl remove` edit the pod file: an inherited agent is dropped for real, and
every line but the agent's stays byte for byte as it was."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from podctl.pods.edit import add_agent, remove_agent
from podctl.pods.load import PodFileError, load_pod, load_pod_text

from ..helpers import podctl, write_pod

REVIEW = """\
name: rp
extends: review-pod
vars: {writer_cli: script, reviewer_a_cli: script, reviewer_b_cli: script}
agents:
  gemini-reviewer: {role: reviews briefly}
"""


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_remove_of_an_agent_from_the_extends_template_drops_it(tmp_path: Path) -> None:
    """`podctl remove` of a template's agent said "removed" but only deleted the file's override: the
    template's agent stayed (with the template's defaults: the running pod restarted it without its env)."""
    pod_file = write_pod(tmp_path / "rp", REVIEW)
    out = podctl("remove", str(pod_file), "gemini-reviewer")
    assert "removed gemini-reviewer" in out.stdout and "drops it" in out.stdout, out.stdout
    spec = load_pod(pod_file)
    assert "gemini-reviewer" not in spec.agents and set(spec.agents) == {"writer", "codex-reviewer"}
    assert "gemini-reviewer" not in podctl("graph", str(pod_file)).stdout
    assert [r.to for r in spec.routes] == [["codex-reviewer"]], "the template's route without it"
    assert "gemini-reviewer: null" in pod_file.read_text()
    again = podctl("remove", str(pod_file), "gemini-reviewer", check=False)
    assert again.returncode == 1 and "no agent 'gemini-reviewer'" in again.stderr


def test_an_agent_the_file_defines_over_the_template_is_dropped_too(tmp_path: Path) -> None:
    text = REVIEW.replace("{role: reviews briefly}", "{cli: script, role: mine}") + "routes: []\nrules: []\n"
    pod_file = write_pod(tmp_path / "rp", text)
    edit = remove_agent(text, pod_file, "gemini-reviewer")
    assert "gemini-reviewer" not in load_pod_text(edit.text, pod_file).agents
    assert changed_lines(text, edit.text) == ["-  gemini-reviewer: {cli: script, role: mine}", "+  gemini-reviewer: null"]


def test_a_dropped_agent_named_by_a_route_or_rule_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = REVIEW.replace("{role: reviews briefly}", "null") + (
        "routes:\n  - {name: review, to: [codex-reviewer, gemini-reviewer]}\n"
        "rules:\n  - {name: r, on: turn_end, agent: writer, ask: gemini-reviewer}\n"
    )
    pod_file = write_pod(tmp_path / "rp", text)
    with pytest.raises(PodFileError) as err:
        load_pod(pod_file)
    where = [f"{p.line}:{p.col}" for p in err.value.problems]
    assert where == ["7:41", "9:49"], str(err.value)
    assert "take gemini-reviewer out of it" in err.value.problems[0].message
    assert all(f"which the pod file drops ({pod_file}:5:" in p.message for p in err.value.problems)
    refused = podctl("remove", str(write_pod(tmp_path / "own", REVIEW + text.split("null\n", 1)[1])), "gemini-reviewer",
                     check=False)
    assert refused.returncode == 1 and "would be invalid" in refused.stderr and "drops" in refused.stderr


def test_null_for_an_agent_no_template_gives_is_an_error(tmp_path: Path) -> None:
    pod_file = write_pod(tmp_path / "n", "name: n\nagents:\n  a: {cli: script}\n  ghost: null\n")
    out = podctl("validate", str(pod_file), check=False)
    assert out.returncode == 1 and f"{pod_file}:4:3: agents.ghost is empty" in out.stdout, out.stdout


ODD = """\
# a pod file written by hand, in its own style
name: odd
agents:
    writer:     # the writer
        cli: script
        role: 'You implement the feature you are given, in small steps, and you ask for a review of every step before going on.'
        args: [--one, "--two"]
    # the reviewer reviews
    reviewer:
        cli: script
        role: >-
            You review.
    tester: {cli: script, role: "tests, in \\"quotes\\""}

# who asks whom
routes:
    -   name: review
        to: [reviewer]
        timeout: 10m
"""


def test_remove_and_add_change_only_the_agents_lines(tmp_path: Path) -> None:
    """`remove` re-wrapped unrelated agents' lines (a 3-line removal was a 17+/6- diff): long lines,
    quotes, flow style and indentation stay as they were."""
    pod_file = write_pod(tmp_path / "odd", ODD)
    podctl("remove", str(pod_file), "writer")
    gone = pod_file.read_text()
    assert changed_lines(ODD, gone) == [
        "-    writer:     # the writer", "-        cli: script",
        "-        role: 'You implement the feature you are given, in small steps, and you ask for a review of every"
        " step before going on.'",
        '-        args: [--one, "--two"]',
    ]
    assert list(load_pod_text(gone, pod_file).agents) == ["reviewer", "tester"]
    last = remove_agent(ODD, pod_file, "tester").text
    assert changed_lines(ODD, last) == ['-    tester: {cli: script, role: "tests, in \\"quotes\\""}']
    pod_file.write_text(ODD)
    podctl("add", str(pod_file), "script", "--name", "helper", "--role", "helps: with # and 'quotes'")
    added = pod_file.read_text()
    assert changed_lines(ODD, added) == ["+    helper:", "+        cli: script",
                                         """+        role: "helps: with # and 'quotes'\""""]
    assert load_pod_text(added, pod_file).agents["helper"].role == "helps: with # and 'quotes'"


def test_add_to_an_extending_file_with_empty_agents(tmp_path: Path) -> None:
    text = REVIEW.replace("agents:\n  gemini-reviewer: {role: reviews briefly}\n", "agents: {}   # override here\n")
    pod_file = write_pod(tmp_path / "rp", text)
    added = add_agent(text, pod_file, "extra", "script").text
    assert changed_lines(text, added) == ["-agents: {}   # override here", "+agents:   # override here",
                                          "+  extra:", "+    cli: script"]
    assert "extra" in load_pod_text(added, pod_file).agents


def test_add_and_remove_errors_name_the_pod_file_not_a_temporary_file(tmp_path: Path) -> None:
    pod_file = write_pod(tmp_path / "named", "name: named\nagents:\n  solo: {cli: script}\n  other: {cli: script}\n")
    for args in (["add", str(pod_file), "script", "--name", "solo"], ["remove", str(pod_file), "nobody"]):
        out = podctl(*args, check=False)
        assert out.returncode == 1 and "pod.yaml" in out.stderr and ".pod.yaml." not in out.stderr, out.stderr
