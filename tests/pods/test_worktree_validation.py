"""`worktree:` in a pod file: what `validate` (and every load) says before anything is made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from podctl.pods.load import PodFileError, load_pod

from ..helpers import git_repo, podctl, write_pod


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PodFileError) as err:
        load_pod(path)
    return [f"{p.line}:{p.col}: {p.message}" for p in err.value.problems]


def test_a_worktree_outside_any_git_repository_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write_pod(tmp_path / "plain", "name: p\nagents:\n  writer:\n    cli: script\n    worktree: true\n")
    [problem] = problems_of(path)
    assert problem.startswith("5:15: agent writer: `worktree` needs a git repository"), problem
    assert "git init" in problem and "worktree: false" in problem


def test_the_pod_default_applies_to_every_agent_that_does_not_opt_out(tmp_path: Path) -> None:
    text = "name: p\nworktrees: true\nagents:\n  writer: {cli: script}\n  reviewer: {cli: script, worktree: false}\n"
    problems = problems_of(write_pod(tmp_path / "plain", text))
    assert problems == [problems[0]] and problems[0].startswith("2:12: agent writer:"), problems
    spec = load_pod(write_pod(git_repo(tmp_path / "repo"), text))
    assert spec.agent_branch("writer") == "podctl/p/writer"
    assert spec.agent_branch("reviewer") is None
    assert spec.agent_workdir("reviewer") == (tmp_path / "repo").resolve()


def test_a_branch_checked_out_elsewhere_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    current = subprocess.run(["git", "branch", "--show-current"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
    path = write_pod(repo, f"name: p\nagents:\n  writer:\n    cli: script\n    worktree: {current}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"5:15: agent writer: branch {current!r} is checked out at {repo.resolve()}"), problem
    assert f"worktree: {current}-writer" in problem


def test_branch_names_git_refuses_two_agents_on_one_branch_and_a_repository_without_commits(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    text = ("name: p\nagents:\n  a: {cli: script, worktree: 'feature..x'}\n  b: {cli: script, worktree: shared}\n"
            "  c: {cli: script, worktree: shared}\n")
    problems = problems_of(write_pod(repo, text))
    assert any(p.startswith("3:30: agent a: 'feature..x' is not a valid git branch name") for p in problems), problems
    assert any(p.startswith("5:30: agent c: branch 'shared' is also the worktree branch of b") for p in problems), problems
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)
    [problem] = problems_of(write_pod(empty, "name: p\nagents:\n  a: {cli: script, worktree: true}\n"))
    assert "has no commit yet" in problem, problem


def test_validate_prints_the_worktree_problem_with_file_line_and_column(tmp_path: Path) -> None:
    path = write_pod(tmp_path / "plain", "name: p\nagents:\n  writer: {cli: script, worktree: mine}\n")
    out = podctl("validate", str(path), check=False)
    assert out.returncode == 1 and f"{path}:3:35: agent writer: `worktree` needs a git repository" in out.stdout


def test_branch_names_git_reads_as_something_else_are_refused(tmp_path: Path) -> None:
    """`worktree: "@"` passed validate (`git check-ref-format --branch @` accepts it), and the documented
    `git merge @` then merges HEAD, not the agent's work; so would HEAD, git's *_HEAD refs and refs/..."""
    repo = git_repo(tmp_path / "repo")
    text = ("name: p\nagents:\n  a: {cli: script, worktree: '@'}\n  b: {cli: script, worktree: ORIG_HEAD}\n"
            "  c: {cli: script, worktree: refs/heads/x}\n  d: {cli: script, worktree: feature/ok}\n")
    problems = problems_of(write_pod(repo, text))
    assert [p.split(" is a name git reads")[0] for p in problems] == [
        "3:30: agent a: '@'", "4:30: agent b: 'ORIG_HEAD'", "5:30: agent c: 'refs/heads/x'"], problems
    assert "`git merge @` would not merge the agent's work" in problems[0]
