"""Commands that name a pod: unknown pods and hostile names are clear errors, history outlives the
pod, and an agent that dies says why."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..conftest import Pods
from ..helpers import pane_text, pod_folder, podctl, status_of, tmux_out, transcript, wait_until, write_pod

SOLO = "name: {name}\nagents:\n  solo: {{cli: script}}\n"


UNKNOWN_POD_COMMANDS = [
    ["status", "nosuch"], ["status", "nosuch", "--json"], ["down", "nosuch"], ["resume", "nosuch"],
    ["restart", "nosuch", "a"], ["delete", "nosuch", "-y"], ["tail", "nosuch"], ["attach", "nosuch"],
    ["send", "nosuch", "--to", "a", "hi"], ["prune", "nosuch", "--older-than", "1d"],
    ["rules", "list", "nosuch"], ["handoff", "nosuch", "a", "b"], ["add", "nosuch", "script", "--name", "x"],
]


def test_every_command_given_an_unknown_pod_fails_and_lists_the_known_ones(tmp_path: Path) -> None:
    pod_folder("real", write_pod(tmp_path / "real", SOLO.format(name="real")))
    for args in UNKNOWN_POD_COMMANDS:
        out = podctl(*args, check=False)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "no pod named 'nosuch'" in out.stderr and "known pods: real" in out.stderr, (args, out.stderr)


def test_a_mistyped_pod_name_gets_a_did_you_mean(tmp_path: Path) -> None:
    pod_folder("review-pod", write_pod(tmp_path / "real", SOLO.format(name="review-pod")))
    for args in (["status", "reveiw-pod"], ["status", "reveiw-pod", "--json"], ["tail", "review-pd"]):
        out = podctl(*args, check=False)
        assert out.returncode == 1 and "did you mean 'review-pod'?" in out.stderr, (args, out.stderr)
    assert "did you mean" not in podctl("status", "zzz", check=False).stderr, "only a close name is suggested"


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../victim", "Real", "-x", "real\n"])
def test_a_pod_argument_that_is_not_a_pod_name_never_leaves_the_state_folder(
    name: str, tmp_path: Path, podctl_home: Path
) -> None:
    """Only names that stay inside the test's temporary folders if the check ever regresses: before
    the fix, `podctl delete / --yes` removed the machine's root (it took /etc here)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    for args in (["delete", name, "--yes"], ["delete", str(victim), "--yes"], ["status", name], ["down", name]):
        out = podctl(*args, check=False)
        assert out.returncode in (1, 2), (args, out.stdout)
        assert "Traceback" not in out.stderr and ("podctl:" in out.stderr or "Usage:" in out.stderr)
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert podctl_home.exists() and podctl_home.parent.exists()


def test_delete_refuses_a_folder_podctl_did_not_make(podctl_home: Path) -> None:
    stranger = podctl_home / "notapod"
    stranger.mkdir(parents=True)
    (stranger / "data").write_text("x\n")
    out = podctl("delete", "notapod", "--yes", check=False)
    assert out.returncode == 1 and "no pod named 'notapod'" in out.stderr
    assert (stranger / "data").exists()


def test_delete_refuses_a_folder_with_a_pod_file_record_but_no_mark(tmp_path: Path, podctl_home: Path) -> None:
    """A folder holding a `pod.yaml.path` file but no `.podctl-pod` mark was taken for a pod and
    removed whole, with whatever else it held."""
    stranger = podctl_home / "lookalike"
    stranger.mkdir(parents=True)
    (stranger / "pod.yaml.path").write_text(f"{tmp_path / 'pod.yaml'}\n")
    (stranger / "thesis.tex").write_text("years of work\n")
    out = podctl("delete", "lookalike", "--yes", check=False)
    assert out.returncode == 1 and "no pod named 'lookalike'" in out.stderr, out.stderr
    assert (stranger / "thesis.tex").read_text() == "years of work\n"
    assert "lookalike" not in podctl("ls").stdout


def test_delete_of_a_running_pod_only_says_deleted(tmp_path: Path, pods: Pods, podctl_home: Path) -> None:
    pods.up(write_pod(tmp_path / "gone", SOLO.format(name="gone")))
    out = podctl("delete", "gone", "--yes")
    assert out.stdout.strip() == "deleted pod gone", out.stdout
    assert not (podctl_home / "gone").exists() and tmux_out("has-session", "-t", "=gone") == ""


def test_history_and_status_of_a_pod_that_is_down(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(
        tmp_path / "hist",
        "name: hist\nagents:\n  solo: {cli: script, script: {replies: 'ok: {text}'}}\n  mute: {cli: script}\n",
    )
    pods.up(pod_file)
    out = podctl("send", "hist", "--to", "solo", "--ask", "are you there?", "--wait", "30").stdout
    assert "reply from solo: ok: are you there?" in out
    podctl("send", "hist", "--to", "mute", "stay quiet")
    live = wait_until(lambda: (t := transcript("hist")) and "[mute✓✓]" in t and t, timeout=30,
                      message="mute to read the message it was woken for")
    podctl("down", "hist")

    down = podctl("tail", "hist")
    assert down.returncode == 0 and "is down: its history" in down.stderr
    assert down.stdout == live, "the same history, from the store"
    rows = [json.loads(line) for line in podctl("tail", "hist", "--json").stdout.splitlines()]
    assert [m["kind"] for m in rows][-3:] == ["ask", "reply", "tell"]
    assert [d["to"] for d in rows[-1]["delivery"]] == ["mute"]
    assert podctl("tail", "hist", "--last", "1").stdout.count("\n") == 1

    status = status_of("hist")
    assert status["broker"] == "stopped" and status["session"] == "stopped"
    agents = {a["name"]: a for a in status["agents"]}
    assert agents["solo"]["state"] == "stopped" and agents["mute"]["unread"] >= 0
    assert "the pod is down" in podctl("status", "hist").stdout


def test_an_agent_that_dies_at_start_fails_up_and_status_says_why(tmp_path: Path, pods: Pods) -> None:
    folder = tmp_path / "dies"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "bad.yaml").write_text("steps:\n  - dance: {with: everyone}\n")
    pod_file = write_pod(
        folder, "name: dies\nagents:\n  good: {cli: script}\n  bad: {cli: script, script: scripts/bad.yaml}\n"
    )
    pods.names.add("dies")
    out = podctl("up", str(pod_file), "--no-attach", check=False)
    assert out.returncode == 1, out.stdout
    assert "✗ agent bad exited with status 2" in out.stderr, out.stderr
    assert "unknown step 'dance'" in out.stderr, "the reason is shown"
    assert "✗ agent good" not in out.stderr
    status = podctl("status", "dies").stdout
    assert "unknown step 'dance'" in status and "more: less +G" in status, status
    bad = next(a for a in status_of("dies")["agents"] if a["name"] == "bad")
    assert bad["state"] == "stopped" and bad["exit_status"] == 2
    assert any("unknown step 'dance'" in line for line in bad["reason"]["last_lines"])
    log = Path(bad["reason"]["more"].split()[-1])
    assert log.is_file() and os.fspath(log).startswith(os.environ["PODCTL_HOME"])
    assert "unknown step" in pane_text("dies", "bad")
