"""Attention in a running pod of script agents (real tmux, real hooks, the real broker): a
permission step blocks its agent until `podctl approve`, `deny` or an approver answers; a `fail`
step makes it failed; `podctl wait` and `notify:` tell whoever needs to know, once."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..conftest import Pods
from ..helpers import broker_call, pane_text, podctl, transcript, wait_until, write_pod

POD = """\
name: {name}
agents:
  writer:
    cli: script
    script:
      steps:
        - permission: {{tool: Bash, detail: "touch build/x"}}
        - write: {{path: build/x, text: "made"}}
        - say: "after the write"
{more}"""


def agent_row(pod: str, name: str) -> dict[str, Any]:
    return next(a for a in broker_call(pod, "status")["agents"] if a["name"] == name)


def blocked(pod: str, name: str = "writer") -> dict[str, Any]:
    row = agent_row(pod, name)
    return row.get("blocked") or {} if row["state"] == "blocked" else {}


def test_a_permission_step_blocks_until_approved_and_then_runs(tmp_path: Path, pods: Pods) -> None:
    work = tmp_path / "pa"
    pods.up(write_pod(work, POD.format(name="pa", more="")))
    found = wait_until(lambda: blocked("pa"), timeout=30, message="writer blocked")
    assert (found["kind"], found["tool"], found["detail"]) == ("permission", "Bash", "touch build/x")
    waited = podctl("wait", "pa", "--until", "blocked", "--timeout", "5")
    assert waited.stdout.strip() == "writer is blocked: permission: Bash  touch build/x"
    status = podctl("status", "pa").stdout.splitlines()
    assert status[1].startswith("NEEDS YOU  writer: permission: Bash  touch build/x (")
    assert status[2].strip() == "podctl approve pa writer (--always) | podctl deny pa writer --reason TEXT"
    row = next(line for line in status if line.split()[:1] == ["writer"])
    assert "blocked for" in row and "permission: Bash  touch build/x" in row
    listed = next(line for line in podctl("ls").stdout.splitlines() if line.split()[:1] == ["pa"])
    assert listed.split()[:3] == ["pa", "up", "1"]
    assert podctl("approve", "pa", "writer").stdout.strip() == "approved writer: Bash  touch build/x"
    wait_until(lambda: (work / "build" / "x").exists(), timeout=20, message="the allowed step to run")
    wait_until(lambda: agent_row("pa", "writer")["state"] == "idle", timeout=20, message="writer idle")
    assert "writer needs you: Bash  touch build/x" in transcript("pa")


def test_deny_skips_the_guarded_step_and_says_why_in_the_pane(tmp_path: Path, pods: Pods) -> None:
    work = tmp_path / "pd"
    pods.up(write_pod(work, POD.format(name="pd", more="")))
    wait_until(lambda: blocked("pd"), timeout=30, message="writer blocked")
    said = podctl("deny", "pd", "writer", "--reason", "not in build/")
    assert said.stdout.strip() == "denied writer: Bash  touch build/x (reason: not in build/)"
    wait_until(lambda: "not in build/" in pane_text("pd", "writer"), timeout=20, message="the reason in the pane")
    assert not (work / "build" / "x").exists()
    late = podctl("approve", "pd", "writer", check=False)
    assert late.returncode == 1 and "already answered: denied by user" in late.stderr


def test_an_approver_agent_answers_for_the_person(tmp_path: Path, pods: Pods) -> None:
    work = tmp_path / "pr"
    more = ("  guard:\n    cli: script\n    script: {replies: 'allow, it only touches build/'}\n"
            "approvals: [{agents: [writer], to: guard, timeout: 1m}]\n")
    pods.up(write_pod(work, POD.format(name="pr", more=more)))
    wait_until(lambda: (work / "build" / "x").exists(), timeout=30, message="the guard's allow to run the step")
    text = transcript("pr")
    assert "writer asks guard to approve: Bash  touch build/x" in text
    assert "PERMISSION REQUEST from writer (script): it wants to run Bash:" in text
    assert "writer: Bash  touch build/x: allowed by guard" in text


def test_an_approver_that_answers_anything_else_denies_with_its_reply_as_the_reason(tmp_path: Path, pods: Pods) -> None:
    work = tmp_path / "pn"
    more = ("  guard:\n    cli: script\n    script: {replies: 'Looks risky to me'}\n"
            "approvals: [{agents: [writer], to: guard}]\n")
    pods.up(write_pod(work, POD.format(name="pn", more=more)))
    wait_until(lambda: "writer: Bash  touch build/x: denied by guard: Looks risky to me" in transcript("pn"),
               timeout=30, message="the guard's reply to deny")
    wait_until(lambda: "Looks risky to me" in pane_text("pn", "writer"), timeout=20, message="the reason in the pane")
    assert not (work / "build" / "x").exists()


def test_a_failed_turn_is_failed_and_notify_runs_once_per_episode(tmp_path: Path, pods: Pods) -> None:
    """`notify:` runs its command (argv, placeholders filled, no shell) once for the episode: the
    person is not nagged while it lasts, nor when status is asked again."""
    work = tmp_path / "pf"
    log = tmp_path / "notices.txt"
    notifier = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(' | '.join(sys.argv[2:]) + '\\n')",
                str(log), "{pod}", "{agent}", "{on}", "{detail}"]
    text = (f"name: pf\nagents:\n  writer:\n    cli: script\n    script:\n      steps:\n"
            f"        - fail: 'API Error: 401 invalid x-api-key'\n"
            f"notify: [{{on: [failed, blocked], run: {json.dumps(notifier)}}}]\n")
    pods.up(write_pod(work, text))
    wait_until(lambda: agent_row("pf", "writer").get("failed"), timeout=30, message="writer failed")
    assert agent_row("pf", "writer")["failed"]["reason"] == "API Error: 401 invalid x-api-key"
    waited = podctl("wait", "pf", "--until", "failed", "--agent", "writer", "--timeout", "5")
    assert waited.stdout.strip() == "writer is failed: failed: API Error: 401 invalid x-api-key"
    wait_until(lambda: log.exists(), timeout=20, message="the notify command to run")
    podctl("send", "pf", "--to", "writer", "try again")
    assert not agent_row("pf", "writer")["waking"], "a failed agent is not woken"
    assert log.read_text() == "pf | writer | failed | API Error: 401 invalid x-api-key\n"


def test_wait_times_out_with_exit_3_and_says_how_things_are(tmp_path: Path, pods: Pods) -> None:
    pods.up(write_pod(tmp_path / "pw", "name: pw\nagents:\n  a: {cli: script}\n"))
    wait_until(lambda: agent_row("pw", "a")["state"] == "idle", timeout=30, message="a idle")
    proc = podctl("wait", "pw", "--until", "blocked", "--timeout", "0.5", check=False)
    assert proc.returncode == 3 and "not blocked after 0.5s (a idle)" in proc.stderr
    assert podctl("wait", "pw", "--until", "idle").stdout.strip() == "a is idle"
    bad = podctl("wait", "pw", "--until", "sleepy", check=False)
    assert bad.returncode == 2 and "--until must be one of blocked, failed, idle" in bad.stderr
