"""Auto-ask rules in the broker, with real git repositories: turn_end review, loop guard, hand-off."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from podctl.broker import gitdiff
from podctl.broker.records import Message, RuleRow
from podctl.broker.wire import Client

from ..helpers import BrokerProcess, git_repo, podctl, wait_until, write_pod

REVIEW_POD = """\
name: autorev
workdir: repo
agents:
  writer: {{cli: script, role: writes the code}}
  rev-a: {{cli: script}}
  rev-b: {{cli: script}}
routes:
  - name: review
    to: [rev-a, rev-b]
    mode: all
    timeout: 10m
rules:
  - name: auto-review
    on: turn_end
    agent: writer
    when: {{changed: ["src/**"]}}
    ask: review
    text: "{{agent}} changed {{changed_files}}. Review:\\n{{diff}}"
    max_rounds: {max_rounds}
    cooldown: 0s
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str = "more") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def user_git_state(repo: Path) -> dict[str, object]:
    """Everything of the user's git state a rule must leave alone (read without refreshing the index)."""
    index = Path(repo, git(repo, "rev-parse", "--git-path", "index").strip())
    return {
        "index": index.read_bytes(), "index_mtime": index.stat().st_mtime_ns,
        "status": git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all"),
        "head": git(repo, "rev-parse", "HEAD"), "refs": git(repo, "for-each-ref"),
        "stash": git(repo, "stash", "list"),
    }


def assert_untouched(repo: Path, before: dict[str, object], *, new_status: tuple[str, ...] = ()) -> None:
    """The user's index (bytes and mtime), HEAD, refs and stash are as before; status differs only by the
    agent's edits (`new_status`: porcelain lines)."""
    after = user_git_state(repo)
    assert {k: v for k, v in after.items() if k != "status"} == {k: v for k, v in before.items() if k != "status"}
    expected = str(before["status"]).splitlines() + list(new_status)
    assert sorted(str(after["status"]).splitlines()) == sorted(expected)


def asks_to(client: Client) -> list[Message]:
    """The asks among the client's unread messages (each is returned once)."""
    return [m for m in client.call("read_messages")["messages"] if m["kind"] == "ask"]


def start(start_broker: Callable[..., BrokerProcess], tmp_path: Path, max_rounds: int = 3) -> tuple[BrokerProcess, Path]:
    folder = tmp_path / "autorev"
    repo = git_repo(folder / "repo")
    pod = write_pod(folder, REVIEW_POD.format(max_rounds=max_rounds))
    return start_broker(pod), repo


def test_turn_end_with_changes_asks_both_reviewers_and_gathers_one_answer(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker, repo = start(start_broker, tmp_path)
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
        w.call("hello", shim=True)
        w.call("hook", event="session_start")
        w.call("hook", event="turn_start")
        (repo / "notes.txt").write_text("not under src\n")
        w.call("hook", event="turn_end")
        (repo / "src").mkdir()
        (repo / "src" / "app.py").write_text("print('hi')\n")
        w.call("hook", event="turn_start")
        w.call("hook", event="turn_end")
        [ask_a] = wait_until(lambda: asks_to(a), timeout=20, message="rev-a to be asked")
        [ask_b] = wait_until(lambda: asks_to(b), timeout=20, message="rev-b to be asked")
        assert ask_a["id"] == ask_b["id"] and ask_a["from"] == "podctl" and ask_a["origin"] == "rule:auto-review"
        assert "writer changed src/app.py" in ask_a["text"] and "+print('hi')" in ask_a["text"]
        assert "notes.txt" not in ask_a["text"], "only files matching the rule's globs are reviewed"
        a.call("post_reply", ask_id=ask_a["id"], text="A: looks fine")
        assert [m for m in w.call("read_messages", since=0)["messages"] if m["from"] == "podctl"] == []
        b.call("post_reply", ask_id=ask_b["id"], text="B: add a test")

        def gathered() -> list[Message]:
            return [m for m in w.call("read_messages", since=0)["messages"] if m["from"] == "podctl"]

        [answer] = wait_until(gathered, timeout=20, message="the gathered answer")
        assert answer["urgent"] and "[rev-a]\nA: looks fine" in answer["text"] and "[rev-b]\nB: add a test" in answer["text"]
        assert answer["origin"] == "rule:auto-review"
        with broker.client("user") as user:

            def writer_woken() -> str | None:
                [writer] = [ag for ag in user.call("status")["agents"] if ag["name"] == "writer"]
                return writer["last_wake"]

            wait_until(writer_woken, timeout=20, message="the idle writer to be woken for the answer")
            logs = [(m["text"], m["origin"]) for m in user.call("history")["messages"] if m["kind"] == "log"]
        assert any("rule auto-review fired for writer" in t and o == "rule:auto-review" for t, o in logs)


def test_loop_guard_stops_at_max_rounds_until_the_user_gives_a_new_task(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker, repo = start(start_broker, tmp_path, max_rounds=2)
    (repo / "src").mkdir()
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
        w.call("hook", event="session_start")
        for round_no in range(3):
            (repo / "src" / f"f{round_no}.py").write_text(f"x = {round_no}\n")
            w.call("hook", event="turn_start")
            w.call("hook", event="turn_end")
            if round_no < 2:
                [ask] = wait_until(lambda: asks_to(a), timeout=20, message=f"ask of round {round_no}")
                assert f"src/f{round_no}.py" in ask["text"] and f"f{round_no - 1}.py" not in ask["text"]
                a.call("post_reply", ask_id=ask["id"], text="ok")
                b.call("read_messages")
                b.call("post_reply", ask_id=ask["id"], text="ok")
                wait_until(lambda: w.call("read_messages")["messages"], timeout=20, message="gathered answer")
        with broker.client("user") as user:
            wait_until(
                lambda: any("reached max_rounds" in m["text"] for m in user.call("history")["messages"]),
                timeout=20, message="the max_rounds notice",
            )
            assert asks_to(a) == [], "no third round"
            assert re.search(r"\s2/2\s", podctl("rules", "list", "autorev").stdout)
            user.call("tell", to="writer", text="new task: add logging")
        (repo / "src" / "f3.py").write_text("y = 3\n")
        w.call("hook", event="turn_start")
        w.call("hook", event="turn_end")
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="a new round after a new task")
        assert "src/f2.py" in ask["text"] and "src/f3.py" in ask["text"]


def test_handoff_gives_role_digest_and_task(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    pod = write_pod(
        tmp_path / "relay",
        "name: relay\nagents:\n  primary: {cli: script, role: implements the parser}\n  backup: {cli: script}\n",
    )
    broker = start_broker(pod)
    podctl("send", "relay", "--to", "primary", "implement the CSV parser")
    with broker.client("primary") as p:
        p.call("tell", to="backup", text="I am halfway: tokenizer done")
    out = podctl("handoff", "relay", "primary", "backup", "--reason", "rate limit").stdout
    assert "primary handed off to backup" in out
    with broker.client("backup") as b:
        handoff = [m for m in b.call("read_messages")["messages"] if m["from"] == "podctl"][-1]
    assert handoff["urgent"] and handoff["origin"] == "handoff" and "implements the parser" in handoff["text"]
    assert "implement the CSV parser" in handoff["text"] and "tokenizer done" in handoff["text"]
    with broker.client("user") as user:
        [primary] = [a for a in user.call("status")["agents"] if a["name"] == "primary"]
    assert primary["handed_off_to"] == "backup"


def test_pattern_in_a_pane_hands_off(tmp_path: Path, start_broker: Callable[..., BrokerProcess], tmux_socket: str) -> None:
    pod = write_pod(
        tmp_path / "patt",
        "name: patt\nagents:\n  primary: {cli: script, role: main}\n  backup: {cli: script}\n"
        "rules:\n  - name: on-limit\n    on: pattern\n    agent: primary\n"
        "    when: {regex: 'rate limit (reached|exceeded)'}\n    handoff: backup\n",
    )
    broker = start_broker(pod)
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "patt", "-n", "primary", "cat"], check=True
    )
    subprocess.run(
        ["tmux", "-L", tmux_socket, "send-keys", "-t", "=patt:=primary", "-l", "API error: rate limit reached"],
        check=True,
    )
    with broker.client("backup") as b:
        [handoff] = wait_until(
            lambda: [m for m in b.call("read_messages", since=0)["messages"] if "HAND-OFF" in m["text"]],
            timeout=20, message="a hand-off to backup",
        )
    assert "rule on-limit" in handoff["text"]


# -- workdir inside a repository, baselines ------------------------------------------------------

EXACT_POD = """\
name: {name}
workdir: {workdir}
agents:
  writer: {{cli: script}}
  rev: {{cli: script}}
rules:
  - name: exact
    on: turn_end
    agent: writer
    ask: rev
    text: "changed=[{{changed_files}}]\\n{{diff}}"
    cooldown: 0s
"""

SRC_RULE = """\
  - name: src-only
    on: turn_end
    agent: writer
    when: {changed: ["src/**"]}
    ask: rev2
    text: "src=[{changed_files}]"
    cooldown: 0s
"""


def turn(writer: Client, edit: Callable[[], object]) -> None:
    writer.call("hook", event="turn_start")
    edit()
    writer.call("hook", event="turn_end")


def answer(writer: Client, rev: Client, ask: Message) -> None:
    """Reply to an auto-ask and wait until the writer has the gathered answer (the rule is free again)."""
    rev.call("post_reply", ask_id=ask["id"], text="ok")
    wait_until(lambda: writer.call("read_messages")["messages"], timeout=20, message="the gathered answer")


def test_workdir_in_a_subfolder_reviews_only_the_agents_files_with_workdir_relative_paths(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    repo = git_repo(tmp_path / "mono")
    (repo / "lib").mkdir()
    (repo / "lib" / "core.py").write_text("core = 1\n")
    team = repo / "team"
    team.mkdir()
    (team / "plan.md").write_text("the plan\n")
    pod = write_pod(team, EXACT_POD.format(name="subrev", workdir=".").replace(
        "  rev: {cli: script}\n", "  rev: {cli: script}\n  rev2: {cli: script}\n") + SRC_RULE)
    commit_all(repo)
    before = user_git_state(repo)
    broker = start_broker(pod)
    with broker.client("writer") as w, broker.client("rev") as r, broker.client("rev2") as r2:
        w.call("hook", event="session_start")

        def edit() -> None:
            (team / "src").mkdir()
            (team / "src" / "app.py").write_text("print('hi')\n")

        turn(w, edit)
        [ask] = wait_until(lambda: asks_to(r), timeout=20, message="rev to be asked")
        assert ask["text"].split("\n")[0].endswith("changed=[src/app.py]"), ask["text"]
        assert "+print('hi')" in ask["text"] and "b/src/app.py" in ask["text"]
        assert "README.md" not in ask["text"] and "core.py" not in ask["text"] and "team/" not in ask["text"]
        [ask2] = wait_until(lambda: asks_to(r2), timeout=20, message="rev2 to be asked (glob relative to team/)")
        assert ask2["text"].endswith("src=[src/app.py]")
    assert_untouched(repo, before, new_status=("?? team/src/app.py",))


def test_changes_uncommitted_before_the_broker_started_are_the_baseline(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    folder = tmp_path / "base"
    repo = git_repo(folder / "repo")
    (repo / "src").mkdir()
    (repo / "src" / "wip.py").write_text("a = 1\n")
    commit_all(repo)
    (repo / "README.md").write_text("edited by the user, not committed\n")
    (repo / "src" / "wip.py").write_text("a = 1\nb = 2  # user's\n")
    (repo / "scratch.txt").write_text("untracked, the user's\n")
    git(repo, "add", "README.md")  # something staged too: the index is the user's and must stay as it is
    pod = write_pod(folder, EXACT_POD.format(name="base", workdir="repo"))
    before = user_git_state(repo)
    broker = start_broker(pod)
    with broker.client("writer") as w, broker.client("rev") as r:
        w.call("hook", event="session_start")
        turn(w, lambda: (repo / "src" / "new.py").write_text("n = 0\n"))
        [ask] = wait_until(lambda: asks_to(r), timeout=20, message="rev to be asked")
        assert "changed=[src/new.py]" in ask["text"] and "+n = 0" in ask["text"]
        assert "README" not in ask["text"] and "wip.py" not in ask["text"] and "scratch" not in ask["text"]
        answer(w, r, ask)
        turn(w, lambda: (repo / "src" / "wip.py").write_text("a = 1\nb = 2  # user's\nc = 3\n"))
        [ask] = wait_until(lambda: asks_to(r), timeout=20, message="rev to be asked again")
        assert "changed=[src/wip.py]" in ask["text"]
        assert "+c = 3" in ask["text"] and "+b = 2" not in ask["text"], "only the agent's line is new"
    assert_untouched(repo, before, new_status=("?? src/new.py",))


def test_a_rule_added_by_a_reload_takes_its_baseline_then(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    folder = tmp_path / "later"
    repo = git_repo(folder / "repo")
    text = EXACT_POD.format(name="later", workdir="repo")
    pod = write_pod(folder, text[: text.index("rules:")])
    broker = start_broker(pod)
    with broker.client("writer") as w, broker.client("rev") as r:
        w.call("hook", event="session_start")
        turn(w, lambda: (repo / "early.py").write_text("before the rule\n"))
        write_pod(folder, text)
        broker.sync()
        turn(w, lambda: (repo / "late.py").write_text("after the rule\n"))
        [ask] = wait_until(lambda: asks_to(r), timeout=20, message="rev to be asked")
        assert "changed=[late.py]" in ask["text"] and "early" not in ask["text"]


def test_workdir_in_a_repository_nested_in_another_repositorys_folder(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    outer = git_repo(tmp_path / "outer")
    inner = git_repo(outer / "vendor" / "inner")
    (inner / "app").mkdir()
    (inner / "app" / "main.py").write_text("main = 1\n")
    commit_all(inner)
    pod = write_pod(outer, EXACT_POD.format(name="nested", workdir="vendor/inner/app"))
    before = {"outer": user_git_state(outer), "inner": user_git_state(inner)}
    broker = start_broker(pod)
    with broker.client("writer") as w, broker.client("rev") as r:
        w.call("hook", event="session_start")

        def edit() -> None:
            (inner / "app" / "feature.py").write_text("feature = True\n")
            (inner / "app" / "main.py").write_text("main = 2\n")

        turn(w, edit)
        [ask] = wait_until(lambda: asks_to(r), timeout=20, message="rev to be asked")
        assert "changed=[feature.py, main.py]" in ask["text"]
        assert "-main = 1" in ask["text"] and "+main = 2" in ask["text"] and "a/main.py" in ask["text"]
        assert "README" not in ask["text"] and "pod.yaml" not in ask["text"] and "app/" not in ask["text"]
    assert_untouched(inner, before["inner"], new_status=("?? app/feature.py", " M app/main.py"))
    after_outer = user_git_state(outer)
    assert {k: v for k, v in after_outer.items() if k != "status"} == {
        k: v for k, v in before["outer"].items() if k != "status"
    }


# -- gitdiff on its own --------------------------------------------------------------------------


def tree_files(repo: Path, tree: str) -> list[str]:
    return git(repo, "ls-tree", "-r", "--full-tree", "--name-only", tree).split()


def test_snapshot_of_a_subfolder_is_its_own_tree_with_untracked_files_and_without_ignored_ones(
    tmp_path: Path,
) -> None:
    repo = git_repo(tmp_path / "r")
    sub = repo / "team"
    (sub / "src").mkdir(parents=True)
    (sub / "src" / "a.py").write_text("a\n")
    (repo / ".gitignore").write_text("*.log\n")
    commit_all(repo)
    (sub / "untracked.py").write_text("u\n")
    (sub / "debug.log").write_text("ignored\n")
    (repo / "outside.py").write_text("not in team\n")
    before = user_git_state(repo)
    base = asyncio.run(gitdiff.base_tree(sub))
    now = asyncio.run(gitdiff.snapshot(sub))
    assert tree_files(repo, base) == ["src/a.py"]
    assert tree_files(repo, now) == ["src/a.py", "untracked.py"]
    change = asyncio.run(gitdiff.changes(sub, base, now))
    assert change.files == ["untracked.py"] and "+u" in change.diff and "b/untracked.py" in change.diff
    assert_untouched(repo, before)


def test_changes_names_only_the_files_asked_for_even_with_pathspec_characters(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r")
    sub = repo / "pkg"
    sub.mkdir()
    old = asyncio.run(gitdiff.snapshot(sub))
    (sub / "a*.py").write_text("star\n")
    (sub / "ab.py").write_text("plain\n")
    new = asyncio.run(gitdiff.snapshot(sub))
    assert asyncio.run(gitdiff.changes(sub, old, new)).files == ["a*.py", "ab.py"]
    only = asyncio.run(gitdiff.changes(sub, old, new, files=["a*.py"]))
    assert only.files == ["a*.py"] and "+star" in only.diff and "plain" not in only.diff


def test_empty_untracked_or_ignored_subfolders_snapshot_as_the_empty_tree(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r")
    (repo / ".gitignore").write_text("build/\n")
    commit_all(repo)
    empty = git(repo, "hash-object", "-t", "tree", "/dev/null").strip()
    for name in ("fresh", "build"):
        (repo / name).mkdir()
        assert asyncio.run(gitdiff.base_tree(repo / name)) == empty
    (repo / "build" / "out.bin").write_text("ignored\n")
    assert asyncio.run(gitdiff.snapshot(repo / "fresh")) == empty
    assert asyncio.run(gitdiff.snapshot(repo / "build")) == empty
    (repo / "fresh" / "x.py").write_text("x\n")
    assert tree_files(repo, asyncio.run(gitdiff.snapshot(repo / "fresh"))) == ["x.py"]


def test_snapshot_works_mid_merge_with_conflicts_outside_the_workdir(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "r")
    (repo / "sub").mkdir()
    (repo / "sub" / "s.py").write_text("s\n")
    commit_all(repo)
    main = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(repo, "checkout", "-qb", "other")
    (repo / "README.md").write_text("theirs\n")
    commit_all(repo)
    git(repo, "checkout", "-q", main)
    (repo / "README.md").write_text("ours\n")
    commit_all(repo)
    assert subprocess.run(["git", "merge", "-q", "other"], cwd=repo, capture_output=True).returncode != 0
    (repo / "sub" / "t.py").write_text("t\n")
    before = user_git_state(repo)
    assert "UU README.md" in str(before["status"])
    tree = asyncio.run(gitdiff.snapshot(repo / "sub"))
    assert tree_files(repo, tree) == ["s.py", "t.py"]
    assert_untouched(repo, before)


def test_a_single_star_glob_stays_within_its_folder(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    folder = tmp_path / "star"
    repo = git_repo(folder / "repo")
    (repo / "src" / "deep").mkdir(parents=True)
    text = EXACT_POD.format(name="star", workdir="repo").replace("    ask: rev\n", "    when: {changed: ['src/*.py']}\n    ask: rev\n")
    broker = start_broker(write_pod(folder, text))
    with broker.client("writer") as w, broker.client("rev") as r:
        w.call("hook", event="session_start")
        turn(w, lambda: (repo / "src" / "deep" / "nested.py").write_text("n = 1\n"))
        turn(w, lambda: (repo / "src" / "top.py").write_text("t = 1\n"))
        [ask] = wait_until(lambda: asks_to(r), timeout=20, message="rev to be asked about src/top.py")
    assert ask["text"].startswith("[auto-ask by rule exact, on behalf of writer] changed=[src/top.py]"), ask["text"]
    assert "nested" not in ask["text"], "src/*.py does not reach into src/deep/"


# -- rule state across broker restarts ---------------------------------------------------------------

RESTART_POD = (
    REVIEW_POD.replace("name: autorev", "name: {name}").replace("timeout: 10m", "timeout: {timeout}")
    .replace("writer: {{cli: script, role: writes the code}}", "writer: {{cli: script, worktree: true}}")
)
"""The review pod with the writer in a worktree of its own."""


def start_in_a_worktree(start_broker: Callable[..., BrokerProcess], tmp_path: Path, name: str, timeout: str = "10m") -> tuple[BrokerProcess, Path]:
    """A writer in its own worktree (made as `up` makes it): its first diff is against its starting commit."""
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator import worktrees
    from podctl.pods.load import load_pod

    folder = tmp_path / name
    git_repo(folder / "repo")
    pod = write_pod(folder, RESTART_POD.format(name=name, timeout=timeout, max_rounds=3))
    record = worktrees.ensure(load_pod(pod), PodPaths.of(name).ensure(), "writer")
    assert record is not None
    return start_broker(pod), Path(record.path)


def rule_row(broker: BrokerProcess) -> RuleRow:
    with broker.client("user") as user:
        [row] = user.call("rules")["rules"]
    return row


def gathered(writer: Client) -> list[Message]:
    return [m for m in writer.call("read_messages")["messages"] if m["from"] == "podctl" and m["urgent"]]


def test_a_restart_keeps_the_rules_baseline_and_rounds_so_reviewed_work_is_not_sent_again(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    broker, work = start_in_a_worktree(start_broker, tmp_path, "keep")
    (work / "src").mkdir()
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
        w.call("hook", event="session_start")
        turn(w, lambda: (work / "src" / "app.py").write_text("print('hi')\n"))
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="the first review")
        assert ask["text"].startswith("[auto-ask by rule auto-review, on behalf of writer] writer changed src/app.py.")
        for reviewer in (a, b):
            reviewer.call("post_reply", ask_id=ask["id"], text="ok")
        wait_until(lambda: gathered(w), timeout=20, message="the gathered answer")
    broker.stop()
    broker.start()
    assert rule_row(broker)["rounds"] == 1
    with broker.client("writer") as w, broker.client("rev-a") as a:
        w.call("hook", event="session_start")
        turn(w, lambda: None)  # the resumed writer's turn changed nothing
        turn(w, lambda: (work / "src" / "more.py").write_text("more = 1\n"))
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="the review of the new work")
    assert "writer changed src/more.py." in ask["text"] and "app.py" not in ask["text"], "reviewed work is not sent again"
    assert rule_row(broker)["rounds"] == 2


def test_an_auto_ask_open_across_a_restart_still_gathers_its_answers_for_the_writer(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    broker, work = start_in_a_worktree(start_broker, tmp_path, "open")
    (work / "src").mkdir()
    with broker.client("writer") as w, broker.client("rev-a") as a:
        w.call("hook", event="session_start")
        turn(w, lambda: (work / "src" / "app.py").write_text("print('hi')\n"))
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="the review")
    broker.stop()
    broker.start()
    assert rule_row(broker)["open_ask"] == ask["ask_id"]
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
        a.call("post_reply", ask_id=ask["id"], text="A: fine")
        b.call("post_reply", ask_id=ask["id"], text="B: add a test")
        [answer] = wait_until(lambda: gathered(w), timeout=20, message="the gathered answer after the restart")
        assert "[rev-a]\nA: fine" in answer["text"] and "[rev-b]\nB: add a test" in answer["text"]
        follow = b.call("post_reply", ask_id=ask["id"], text="B: and a docstring")
        assert follow["followup"] and follow["to"] == ["writer"]
        [late] = wait_until(lambda: w.call("read_messages")["messages"], timeout=10, message="the follow-up")
    assert (late["from"], late["text"], late["followup"]) == ("rev-b", "B: and a docstring", True), (
        "a follow-up to a rule's ask reaches the agent the rule asked for"
    )
    assert rule_row(broker)["open_ask"] is None


def test_an_auto_ask_that_expires_while_the_broker_is_down_tells_the_writer_after_the_restart(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess]
) -> None:
    broker, work = start_in_a_worktree(start_broker, tmp_path, "exp", timeout="2s")
    (work / "src").mkdir()
    with broker.client("writer") as w, broker.client("rev-a") as a:
        w.call("hook", event="session_start")
        turn(w, lambda: (work / "src" / "app.py").write_text("print('hi')\n"))
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="the review")
        a.call("post_reply", ask_id=ask["id"], text="A: fine")
    broker.stop()
    broker.start()
    with broker.client("writer") as w, broker.client("rev-b") as b:
        [answer] = wait_until(lambda: gathered(w), timeout=20, message="the expiry, told to the writer")
        assert "no answer from rev-b before the timeout" in answer["text"] and "[rev-a]\nA: fine" in answer["text"]
        late = b.call("post_reply", ask_id=ask["id"], text="B: sorry, late")
        assert late["to"] == ["writer"], "a late answer to a rule's ask reaches the agent it asked for"


def test_a_follow_up_to_a_rules_ask_reaches_the_agent_it_asked_for(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker, repo = start(start_broker, tmp_path)
    (repo / "src").mkdir()
    with broker.client("writer") as w, broker.client("rev-a") as a, broker.client("rev-b") as b:
        w.call("hook", event="session_start")
        turn(w, lambda: (repo / "src" / "app.py").write_text("print('hi')\n"))
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="the review")
        first = a.call("post_reply", ask_id=ask["id"], text="A: fine")
        assert first["to"] == [], "gathered by the rule while it waits for rev-b"
        b.call("post_reply", ask_id=ask["id"], text="B: fine")
        wait_until(lambda: gathered(w), timeout=20, message="the gathered answer")
        assert a.call("post_reply", ask_id=ask["id"], text="A: one more thing")["to"] == ["writer"]
        [follow] = wait_until(lambda: w.call("read_messages")["messages"], timeout=10, message="the follow-up")
    assert (follow["from"], follow["text"], follow["followup"]) == ("rev-a", "A: one more thing", True)


def test_a_reviewer_removed_while_a_rule_waits_for_it_completes_the_rules_ask(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    """The rule's ask held out for a removed reviewer until its timeout: now the others' answers are
    gathered at once and the writer hears who left."""
    broker, repo = start(start_broker, tmp_path)
    (repo / "src").mkdir()
    with broker.client("writer") as w, broker.client("rev-a") as a:
        w.call("hook", event="turn_start")
        (repo / "src" / "app.py").write_text("print('hi')\n")
        w.call("hook", event="turn_end")
        [ask] = wait_until(lambda: asks_to(a), timeout=20, message="rev-a to be asked")
        a.call("post_reply", ask_id=ask["id"], text="A: fine")
        broker.pod_file.write_text(broker.pod_file.read_text().replace("  rev-b: {cli: script}\n", "")
                                   .replace("[rev-a, rev-b]", "[rev-a]"))
        broker.sync()

        def told() -> list[str]:
            return [m["text"] for m in w.call("read_messages", since=0)["messages"] if m["from"] == "podctl"]

        said = wait_until(lambda: len(told()) >= 2 and told(), timeout=20, message="the gathered answer and the notice")
        assert any("[rev-a]\nA: fine" in t and "no answer from" not in t for t in said), said
        assert any(f"rev-b was removed from pod autorev and will not answer ask #{ask['ask_id']}" in t for t in said), said
