"""Collaboration as configuration, end to end: script agents in real tmux, a real git repository."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from podctl.pods import catalog

from ..conftest import Pods
from ..helpers import git_repo, pane_text, podctl, status_of, tmux_out, wait_until, write_pod

REVIEW = """\
name: autoreview
extends: review-pod
vars: {writer_cli: script, reviewer_a_cli: script, reviewer_b_cli: script}
agents:
  writer:
    script:
      steps:
        - write: {path: src/app.py, text: "def answer():\\n    return 42\\n"}
  codex-reviewer:
    script: {replies: "A: add a docstring"}
  gemini-reviewer:
    script: {replies: "B: LGTM"}
rules:
  - name: auto-review
    on: turn_end
    agent: writer
    when: {changed: ["src/**"]}
    ask: review
    text: "{agent} changed {changed_files}:\\n{diff}"
    max_rounds: 3
    cooldown: 0s
"""


def test_writer_turn_end_is_reviewed_by_both_and_the_gathered_answer_wakes_it(tmp_path: Path, pods: Pods) -> None:
    repo = git_repo(tmp_path / "autoreview")
    pod_file = write_pod(repo, REVIEW)
    pods.up(pod_file)
    for reviewer in ("codex-reviewer", "gemini-reviewer"):
        wait_until(partial(lambda r: "+    return 42" in pane_text("autoreview", r), reviewer), timeout=40,
                   message=f"{reviewer} to be asked with the diff")
    text = wait_until(
        lambda: (t := pane_text("autoreview", "writer")) and "Answers to the auto-ask of rule auto-review" in t and t,
        timeout=40, message="the writer to receive the gathered answer",
    )
    assert "[codex-reviewer]" in text and "A: add a docstring" in text and "B: LGTM" in text
    assert "turn 2 (woken)" in text, "the gathered answer woke the writer"
    transcript = podctl("tail", "autoreview").stdout
    assert "rule auto-review fired for writer (turn_end): ask #" in transcript
    assert "gathered answer to ask #" in transcript


@pytest.mark.parametrize("template", catalog.names())
def test_each_builtin_template_comes_up(tmp_path: Path, pods: Pods, template: str) -> None:
    spec_agents = {
        "review-pod": ["writer", "codex-reviewer", "gemini-reviewer"],
        "pair": ["left", "right"],
        "consensus": ["judge", "claude-panelist", "codex-panelist", "gemini-panelist"],
        "relay": ["primary", "backup"],
    }[template]
    overrides = "".join(f"  {name}: {{cli: script}}\n" for name in spec_agents)
    pod_file = write_pod(tmp_path / template, f"name: t-{template}\nextends: {template}\nagents:\n{overrides}")
    pods.up(pod_file)
    names = tmux_out("list-windows", "-t", f"=t-{template}", "-F", "#{window_name}").split()
    assert names == ["podctl", *spec_agents]
    wait_until(lambda: all(a["state"] == "idle" for a in status_of(f"t-{template}")["agents"]), timeout=40,
               message="every agent of the template to start")
