"""Git worktrees per agent, end to end: script agents in real tmux, real git repositories in temp folders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ..conftest import Pods
from ..helpers import (
    agent_state,
    broker_call,
    git_repo,
    podctl,
    status_of,
    tmux_out,
    transcript,
    wait_until,
    window_pids,
    write_pod,
)

POD = """\
name: {name}
workdir: {workdir}
agents:
  writer:
    cli: script
    worktree: true
    script:
      steps:
        - write: {{path: app.py, text: "print(42)\\n"}}
  reviewer:
    cli: script
    script: {{replies: "LGTM"}}
rules:
  - name: review
    on: turn_end
    agent: writer
    ask: reviewer
    text: "{{agent}} works in {{workdir}} and changed {{changed_files}}:\\n{{diff}}"
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def user_git_state(repo: Path) -> dict[str, str]:
    """What of the user's checkout podctl must leave alone: HEAD, the index, the status and the stash."""
    return {
        "head": git(repo, "rev-parse", "HEAD"), "branch": git(repo, "symbolic-ref", "HEAD"),
        "index": git(repo, "ls-files", "--stage"), "stash": git(repo, "stash", "list"),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all"),
    }


def asks_to_reviewer(pod: str) -> list[dict[str, Any]]:
    messages = broker_call(pod, "history", since=0, limit=1000)["messages"]
    return [m for m in messages if m["kind"] == "ask" and "reviewer" in m["to"]]


def worktree_of(podctl_home: Path, pod: str, agent: str) -> Path:
    return podctl_home / pod / "worktrees" / agent


def test_a_writer_in_its_own_worktree_is_reviewed_on_exactly_its_diff_and_keeps_it_across_down_and_up(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    pod_file = write_pod(repo, POD.format(name="wt", workdir="."))
    before = user_git_state(repo)
    tree = worktree_of(podctl_home, "wt", "writer")
    planned = podctl("plan", str(pod_file)).stdout
    assert f"make a worktree for writer: {tree}, from {repo.resolve()}'s HEAD, on a new branch podctl/wt/writer" \
        in planned, planned
    assert "reviewer" not in planned.split("make a worktree")[1], "only worktree agents get one"
    pods.up(pod_file)
    tree = worktree_of(podctl_home, "wt", "writer")
    wait_until(lambda: (tree / "app.py").is_file(), timeout=30, message="the writer's file in its worktree")
    assert not (repo / "app.py").exists(), "the main checkout does not get the writer's file"
    assert f"{tree}  " in git(repo, "worktree", "list") or str(tree) in git(repo, "worktree", "list")
    assert "[podctl/wt/writer]" in git(repo, "worktree", "list")

    ask = wait_until(lambda: asks_to_reviewer("wt"), timeout=30, message="the review ask")[0]
    text = ask["text"]
    assert f"writer works in {tree} and changed app.py:" in text, text
    assert "+print(42)" in text and "pod.yaml" not in text, "exactly the writer's diff, not the main checkout's"
    assert user_git_state(repo) == before, "the user's HEAD, index, status and stash are untouched"

    agents = {a["name"]: a for a in status_of("wt")["agents"]}
    assert agents["writer"]["worktree"]["branch"] == "podctl/wt/writer"
    assert agents["writer"]["worktree"]["path"] == str(tree)
    assert agents["writer"]["worktree"]["changed_files"] == 1
    assert "worktree" not in agents["reviewer"]
    assert "1 file changed" in podctl("status", "wt").stdout

    assert podctl("diff", "wt", "writer", "--name-only").stdout.split() == ["app.py"]
    assert "+print(42)" in podctl("diff", "wt", "writer").stdout
    (tree / "notes.md").write_text("half done\n")
    podctl("down", "wt")
    pods.up(pod_file)
    wait_until(lambda: status_of("wt")["broker"] == "running", timeout=30, message="the pod back up")
    assert (tree / "notes.md").read_text() == "half done\n", "down and up keep the worktree and its work"
    assert sorted(podctl("diff", "wt", "writer", "--name-only").stdout.split()) == ["app.py", "notes.md"]


def test_delete_refuses_a_worktree_with_uncommitted_work_and_force_removes_it_keeping_the_branch(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    pods.up(write_pod(repo, POD.format(name="wtdel", workdir=".")))
    tree = worktree_of(podctl_home, "wtdel", "writer")
    wait_until(lambda: (tree / "app.py").is_file(), timeout=30, message="the writer's file")

    refused = podctl("delete", "wtdel", "--yes", check=False)
    assert refused.returncode == 1
    assert "?? app.py" in refused.stderr and "--force" in refused.stderr and "git merge podctl/wtdel/writer" in refused.stderr
    assert tree.is_dir() and (podctl_home / "wtdel").is_dir(), "a refused delete deletes nothing"

    done = podctl("delete", "wtdel", "--yes", "--force")
    assert "its branch podctl/wtdel/writer is kept" in done.stdout
    assert not tree.exists() and not (podctl_home / "wtdel").exists()
    assert str(tree) not in git(repo, "worktree", "list")
    assert git(repo, "branch", "--list", "podctl/wtdel/writer").strip()


def test_remove_takes_the_worktree_and_its_branch_once_its_commits_are_merged(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    no_rules = POD.split("rules:", maxsplit=1)[0]  # a rule acting for the writer would keep `remove` from editing the file
    pods.up(write_pod(repo, no_rules.format(name="wtrm", workdir=".")))
    tree = worktree_of(podctl_home, "wtrm", "writer")
    wait_until(lambda: (tree / "app.py").is_file(), timeout=30, message="the writer's file")
    git(tree, "add", "app.py")
    git(tree, "commit", "-qm", "the writer's work")
    assert "+print(42)" in podctl("diff", "wtrm", "writer").stdout, "committed work is still the agent's change"

    refused = podctl("remove", "wtrm", "writer", check=False)
    assert refused.returncode == 1 and "commit not merged" in refused.stderr and "the writer's work" in refused.stderr
    assert "writer" in (repo / "pod.yaml").read_text(), "a refused remove leaves the pod file alone"

    git(repo, "merge", "-q", "--ff-only", "podctl/wtrm/writer")
    done = podctl("remove", "wtrm", "writer")
    assert "and its branch podctl/wtrm/writer" in done.stdout
    assert not tree.exists() and not git(repo, "branch", "--list", "podctl/wtrm/writer").strip()
    wait_until(lambda: "writer" not in {a["name"] for a in status_of("wtrm")["agents"]}, timeout=30,
               message="the running pod to drop the writer")


def test_a_worktree_agent_of_a_pod_in_a_subfolder_works_in_that_subfolder_of_its_worktree(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    repo = git_repo(tmp_path / "mono")
    (repo / "svc").mkdir()
    (repo / "svc" / "main.py").write_text("pass\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "svc")
    pod_file = write_pod(repo / "pods", POD.format(name="wtsub", workdir="../svc"))
    pods.up(pod_file)
    tree = worktree_of(podctl_home, "wtsub", "writer")
    wait_until(lambda: (tree / "svc" / "app.py").is_file(), timeout=30, message="the file in svc/ of the worktree")
    ask = wait_until(lambda: asks_to_reviewer("wtsub"), timeout=30, message="the review ask")[0]
    assert f"works in {tree / 'svc'} and changed app.py:" in ask["text"], "rule paths are relative to the agent's folder"
    assert podctl("diff", "wtsub", "writer", "--name-only").stdout.split() == ["svc/app.py"]
    listed = {a["name"]: a for a in broker_call("wtsub", "list_agents")["agents"]}
    assert listed["writer"]["workdir"] == str(tree / "svc") and listed["writer"]["branch"] == "podctl/wtsub/writer"
    assert listed["reviewer"]["workdir"] == str(repo / "svc") and listed["reviewer"]["branch"] is None


def test_status_json_of_a_pod_that_is_down_still_shows_the_worktree(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    pods.up(write_pod(repo, POD.format(name="wtdown", workdir=".")))
    wait_until(lambda: (worktree_of(podctl_home, "wtdown", "writer") / "app.py").is_file(), timeout=30,
               message="the writer's file")
    podctl("down", "wtdown")
    data = json.loads(podctl("status", "wtdown", "--json").stdout)
    writer = next(a for a in data["agents"] if a["name"] == "writer")
    assert writer["worktree"]["changed_files"] == 1 and writer["worktree"]["branch"] == "podctl/wtdown/writer"


def pane_path(pod: str, agent: str) -> str:
    return tmux_out("display-message", "-p", "-t", f"={pod}:={agent}", "#{pane_current_path}").strip()


def test_turning_worktree_on_in_a_running_pod_restarts_the_agent_there_and_a_new_branch_name_is_refused(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    repo = git_repo(tmp_path / "repo")
    pod_file = write_pod(repo, "name: wtlive\nagents:\n  writer: {cli: script}\n  reviewer: {cli: script}\n")
    pods.up(pod_file)
    wait_until(lambda: agent_state("wtlive", "writer") == "idle", timeout=30, message="the writer idle")
    before = window_pids("wtlive")
    assert pane_path("wtlive", "writer") == str(repo.resolve())

    pod_file.write_text(pod_file.read_text().replace("writer: {cli: script}", "writer: {cli: script, worktree: true}"))
    tree = worktree_of(podctl_home, "wtlive", "writer")
    wait_until(lambda: pane_path("wtlive", "writer") == str(tree), timeout=30, message="the writer restarted in its worktree")
    assert window_pids("wtlive")["reviewer"] == before["reviewer"], "the other agent is not disturbed"

    pod_file.write_text(pod_file.read_text().replace("worktree: true", "worktree: renamed"))
    wait_until(lambda: "is on branch podctl/wtlive/writer, and the pod file now says renamed" in transcript("wtlive"),
               timeout=30, message="the branch change to be refused with what to do")
    assert pane_path("wtlive", "writer") == str(tree)


def test_remove_of_a_busy_worktree_agent_keeps_its_worktree_until_it_has_stopped(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    """The running pod removes a busy agent only once it is idle: its worktree must not go from under it."""
    repo = git_repo(tmp_path / "repo")
    text = ("name: wtbusy\nagents:\n  writer:\n    cli: script\n    worktree: true\n    script:\n      steps:\n"
            "        - write: {path: app.py, text: \"x = 1\\n\"}\n        - wait_for: go.flag\n  reviewer: {cli: script}\n")
    pods.up(write_pod(repo, text))
    tree = worktree_of(podctl_home, "wtbusy", "writer")
    wait_until(lambda: agent_state("wtbusy", "writer") == "busy" and (tree / "app.py").is_file(), timeout=30,
               message="the writer busy in its worktree")
    said = podctl("remove", "wtbusy", "writer", "--force").stdout
    assert "writer is busy and stops once idle; its worktree" in said and "is kept" in said, said + transcript("wtbusy")
    assert tree.is_dir() and "writer" in window_pids("wtbusy"), said + transcript("wtbusy")
    (tree / "go.flag").write_text("")
    wait_until(lambda: "writer" not in window_pids("wtbusy"), timeout=30, message="the writer removed once idle")
    assert (tree / "app.py").is_file(), "its work is still there for the user to merge"


def test_an_empty_diff_says_there_are_no_changes(tmp_path: Path) -> None:
    from ..helpers import pod_folder

    repo = git_repo(tmp_path / "repo")
    pod_file = write_pod(repo, "name: calm\nagents:\n  solo: {cli: script}\n")
    git(repo, "add", "pod.yaml")
    git(repo, "commit", "-qm", "the pod")
    pod_folder("calm", pod_file)
    quiet = podctl("diff", "calm", "solo")
    assert quiet.stdout == "" and "no changes" in quiet.stderr, quiet.stderr
    (repo / "README.md").write_text("changed\n")
    changed = podctl("diff", "calm", "solo")
    assert "+changed" in changed.stdout and "no changes" not in changed.stderr


def forge_record(podctl_home: Path, pod: str, agent: str, **fields: object) -> Path:
    record = {"agent": agent, "repo": "", "path": "", "branch": f"podctl/{pod}/{agent}", "base": "0" * 40,
              "owned": True, "created": 0.0, **fields}
    folder = podctl_home / pod / "worktrees"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{agent}.json").write_text(json.dumps(record))
    return folder / f"{agent}.json"


def test_a_forged_worktree_record_never_makes_delete_or_remove_touch_what_it_names(
    tmp_path: Path, podctl_home: Path,
) -> None:
    """A record whose `path` pointed outside the state folder (and `repo` at a missing folder) made
    `podctl delete` (no --force) rmtree a clean repository elsewhere, `.git` included; one naming
    another worktree of the user's made it `git worktree remove` that. Only names inside this
    test's tmp folder can be hit if this regresses."""
    from ..helpers import pod_folder

    victim = git_repo(tmp_path / "victim")
    user = git_repo(tmp_path / "user")
    git(user, "worktree", "add", "-q", str(tmp_path / "userwt"), "-b", "mine")
    pod_file = write_pod(tmp_path / "pf", "name: forged\nagents:\n  writer: {cli: script}\n  other: {cli: script}\n")
    root = pod_folder("forged", pod_file)
    forge_record(podctl_home, "forged", "writer", path=str(victim), repo=str(tmp_path / "missing"),
                 base=git(victim, "rev-parse", "HEAD").strip())
    forge_record(podctl_home, "forged", "other", path=str(tmp_path / "userwt"), repo=str(user),
                 base=git(user, "rev-parse", "HEAD").strip())

    removed = podctl("remove", "forged", "other")
    assert "does not check out" in removed.stdout and "left alone" in removed.stdout, removed.stdout
    assert (tmp_path / "userwt" / "README.md").is_file() and str(tmp_path / "userwt") in git(user, "worktree", "list")

    out = podctl("delete", "forged", "--yes")
    assert "worktrees/writer.json does not check out" in out.stdout, out.stdout
    assert f"its path {victim} is not the agent's worktree folder" in out.stdout, out.stdout
    assert (victim / ".git").is_dir() and (victim / "README.md").read_text() == "hello\n"
    assert git(victim, "status", "--porcelain") == ""
    assert (tmp_path / "userwt" / "README.md").is_file(), "the user's own worktree is left alone"
    assert "no longer a pod" in out.stdout and (root / "worktrees" / "writer.json").is_file()
    assert not (root / "pod.db").exists() and not (root / ".podctl-pod").exists()
    assert "forged" not in podctl("ls").stdout


def test_a_record_whose_folder_its_repository_does_not_list_is_left_alone(tmp_path: Path, podctl_home: Path) -> None:
    """The right folder, a symbolic link to a repository of the user's: never followed, never removed."""
    from ..helpers import pod_folder

    victim = git_repo(tmp_path / "victim")
    root = pod_folder("linked", write_pod(tmp_path / "pf", "name: linked\nagents:\n  writer: {cli: script}\n"))
    forge_record(podctl_home, "linked", "writer", path=str(root / "worktrees" / "writer"), repo=str(victim))
    (root / "worktrees" / "writer").symlink_to(victim)
    out = podctl("delete", "linked", "--yes")
    assert "does not check out" in out.stdout and "symbolic link" in out.stdout, out.stdout
    assert (victim / ".git").is_dir() and (victim / "README.md").is_file()


def test_after_worktree_false_status_and_diff_show_where_the_agent_works_and_the_kept_worktree(
    tmp_path: Path, pods: Pods, podctl_home: Path,
) -> None:
    """After `worktree: false` the agent restarted in the main checkout, but `status` (and --json) still
    said it worked in its worktree and `podctl diff` showed the old worktree; an agent removed by a
    hand edit vanished from `status` with its worktree (and its uncommitted work) unmentioned."""
    repo = git_repo(tmp_path / "repo")
    text = ("name: wtoff\nagents:\n  writer:\n    cli: script\n    worktree: true\n    script:\n      steps:\n"
            "        - write: {path: app.py, text: \"x = 1\\n\"}\n  reviewer: {cli: script}\n")
    pod_file = write_pod(repo, text)
    pods.up(pod_file)
    tree = worktree_of(podctl_home, "wtoff", "writer")
    wait_until(lambda: (tree / "app.py").is_file(), timeout=30, message="the writer's file in its worktree")
    writer = next(a for a in status_of("wtoff")["agents"] if a["name"] == "writer")
    assert writer["worktree"]["path"] == str(tree) and writer["workdir"] == str(tree)

    # Restarted in the main checkout, it writes nothing there (its script would write app.py again at once).
    pod_file.write_text(text.replace("worktree: true", "worktree: false").replace(
        'write: {path: app.py, text: "x = 1\\n"}', "say: back in the main checkout"))
    wait_until(lambda: pane_path("wtoff", "writer") == str(repo.resolve()), timeout=30,
               message="the writer restarted in the main checkout")
    writer = next(a for a in status_of("wtoff")["agents"] if a["name"] == "writer")
    assert "worktree" not in writer and writer["workdir"] == str(repo.resolve()), writer
    kept = writer["kept_worktree"]
    assert kept["path"] == str(tree) and kept["changed_files"] == 1 and kept["uncommitted"] == 1, kept
    assert kept["remove"] == f"git -C {repo.resolve()} worktree remove {tree}"
    table = podctl("status", "wtoff").stdout
    assert f"writer works in {repo.resolve()}; its former worktree {tree} (podctl/wtoff/writer, 1 file changed," \
           f" 1 uncommitted) is kept" in table, table
    diff = podctl("diff", "wtoff", "writer", "--name-only")
    assert "app.py" not in diff.stdout.split() and f"its former worktree {tree}" in diff.stderr, diff

    pod_file.write_text(text.replace("worktree: true", "worktree: false").split("  writer:")[0]
                        + "  reviewer: {cli: script}\n")
    wait_until(lambda: "writer" not in window_pids("wtoff"), timeout=30, message="the writer removed by the hand edit")
    gone = next(a for a in status_of("wtoff")["agents"] if a["name"] == "writer")
    assert gone["state"] == "removed" and gone["kept_worktree"]["uncommitted"] == 1, gone
    table = podctl("status", "wtoff").stdout
    assert f"writer was removed from the pod; its former worktree {tree}" in table, table
    assert "removed from the pod file; its worktree is kept" in table
    assert podctl("diff", "wtoff", "writer", "--name-only").stdout.split() == ["app.py"]
