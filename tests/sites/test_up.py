"""`podctl up --site`: two sites of one pod on this machine (two PODCTL_HOMEs, two tmux servers, one
nats-server), each running its own agents in tmux and its bridge; what the issue asks to see end to end."""

from __future__ import annotations

import json
import subprocess
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from ..helpers import PODCTL, git_repo, scaled, wait_until, write_pod
from .harness import NatsServer, python_children_named, site_env

POD = """\
name: span
bridge: {{url: "{url}"}}
agents:
  writer:
    cli: script
    site: a
    role: writes code
    script:
      steps:
        - write: {{path: app.py, text: "print('hello across machines')\\n"}}
        - ask: {{to: reviewer, text: "is app.py right?", timeout: 60}}
  reviewer:
    cli: script
    site: b
    role: reviews code
    script: {{replies: "LGTM from {{agent}}: {{text}}"}}
rules:
  - name: review
    on: turn_end
    agent: writer
    ask: reviewer
    text: "please review:\\n{{diff}}"
"""


def run(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODCTL, *args], env=env, capture_output=True, text=True, timeout=scaled(timeout), check=False)


def down_everywhere(envs: dict[str, dict[str, str]]) -> None:
    """`podctl down` at every site, and its tmux server gone."""
    for env in envs.values():
        run(env, "down", "span")
        subprocess.run(["tmux", "-L", env["PODCTL_TMUX_SOCKET"], "kill-server"], capture_output=True, check=False)


def history(env: dict[str, str]) -> list[dict[str, Any]]:
    out = run(env, "tail", "span", "--json", "--last", "1000")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{") and '"kind"' in line]


def test_two_sites_brought_up_apart_work_as_one_pod(tmp_path: Path, nats_server: NatsServer) -> None:
    repo = git_repo(tmp_path / "repo")
    pod_file = repo / "pod.yaml"
    pod_file.write_text(POD.format(url=nats_server.url))
    subprocess.run(["git", "add", "pod.yaml"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "pod"], cwd=repo, check=True)
    envs = {name: site_env(tmp_path / f"h{name}", PODCTL_TMUX_SOCKET=f"podctl-test-{uuid.uuid4().hex[:8]}")
            for name in ("a", "b")}
    try:
        for name in ("b", "a"):
            out = run(envs[name], "up", str(pod_file), "--site", name, "--no-attach")
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"started the bridge of site {name}" in out.stdout
        at_a = partial(history, envs["a"])

        def answered() -> list[dict[str, Any]]:
            return [m for m in at_a() if m["kind"] == "reply" and m["from"] == "reviewer"]

        replies = wait_until(answered, timeout=60, message="the reviewer's answer at site a")
        assert "LGTM from reviewer: is app.py right?" in replies[0]["text"]

        def rule_asked() -> list[dict[str, Any]]:
            return [m for m in history(envs["b"]) if m["kind"] == "ask" and m.get("origin") == "rule:review"]

        asked = wait_until(rule_asked, timeout=60, message="the rule's ask with the diff at site b")
        assert "print('hello across machines')" in asked[0]["text"] and asked[0]["from"] == "podctl"

        def gathered() -> list[dict[str, Any]]:
            return [m for m in at_a() if m["kind"] == "tell" and m.get("origin") == "rule:review"]

        answer = wait_until(gathered, timeout=60, message="the rule's gathered answer at site a")
        assert "LGTM from reviewer" in answer[0]["text"] and answer[0]["to"] == ["writer"]
        for name, other in (("a", "b"), ("b", "a")):
            status = json.loads(run(envs[name], "status", "span", "--json").stdout)
            agents = {agent["name"]: agent for agent in status["agents"]}
            assert set(agents) == {"writer", "reviewer"}, status
            remote = "reviewer" if name == "a" else "writer"
            assert agents[remote]["site"] == other and agents[remote]["remote"] is True
            assert agents[remote]["state"] in ("idle", "busy") and agents[remote]["reported_at"]
            assert status["sites"]["here"] == name and status["sites"]["link"]["up"] is True
            table = run(envs[name], "status", "span").stdout
            assert "SITE" in table and f"site {other}: reported" in table, table
        windows = subprocess.run(["tmux", "-L", envs["a"]["PODCTL_TMUX_SOCKET"], "list-windows", "-t", "=span", "-F",
                                  "#{window_name}"], capture_output=True, text=True, check=False).stdout.split()
        assert "writer" in windows and "reviewer" not in windows, "a site runs only its own agents"
    finally:
        down_everywhere(envs)
    server = nats_server.proc.pid if nats_server.proc else None
    assert [p for p in python_children_named(str(tmp_path)) if p != server] == [], "a process outlived the pods"


def test_the_supervisor_starts_a_killed_bridge_again(tmp_path: Path, nats_server: NatsServer) -> None:
    import os
    import signal

    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.processes import bridge_pid

    pod_file = write_pod(tmp_path / "span", f'name: span\nbridge: {{url: "{nats_server.url}"}}\nagents:\n'
                         "  writer: {cli: script, site: a}\n  reviewer: {cli: script, site: b}\n")
    envs = {name: site_env(tmp_path / f"h{name}", PODCTL_TMUX_SOCKET=f"podctl-test-{uuid.uuid4().hex[:8]}")
            for name in ("a", "b")}
    paths_b = PodPaths.of("span", tmp_path / "hb")
    try:
        for name in ("b", "a"):
            out = run(envs[name], "up", str(pod_file), "--site", name, "--no-attach")
            assert out.returncode == 0, out.stdout + out.stderr
        first = wait_until(lambda: bridge_pid(paths_b), timeout=20, message="site b's bridge")
        os.kill(first, signal.SIGKILL)
        again = wait_until(lambda: (pid := bridge_pid(paths_b)) != first and pid, timeout=30,
                           message="the supervisor of site b starting its bridge again")
        assert again != first
        sent = run(envs["a"], "send", "span", "--to", "reviewer", "after the restart")
        assert sent.returncode == 0, sent.stderr

        def arrived() -> bool:
            return any(m["text"] == "after the restart" for m in history(envs["b"]))

        wait_until(arrived, timeout=30, message="a tell through the restarted bridge")
        log = run(envs["b"], "tail", "span", "--last", "100").stdout
        assert "the bridge to the other sites was not running: restarted it" in log, log
    finally:
        down_everywhere(envs)
    server = nats_server.proc.pid if nats_server.proc else None
    assert [p for p in python_children_named(str(tmp_path)) if p != server] == [], "a process outlived the pods"
