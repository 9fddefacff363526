"""Answers that help: `up` shows each step as it happens (and a spinner on a terminal while a CLI
starts), a missing CLI says how to install it, `doctor` tolerates a newer patch release, and
`attach` from inside tmux switches the client."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
from pathlib import Path

from ..conftest import Pods
from ..helpers import PODCTL, holding_apply_lock, pod_folder, podctl, run_on_terminal, tmux_out, wait_until, write_pod

SLOW = "name: {name}\nagents:\n  quick: {{cli: script}}\n  slow: {{cli: claude}}\n"


def stand_in(folder: Path, name: str, script: str) -> Path:
    """An executable `name` in `folder` running the shell `script`: a stand-in for a real CLI."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return folder


def path_with(folder: Path) -> str:
    """PATH with `folder` first and without any real agent CLI (only tmux, python and the system)."""
    keep = {str(Path(shutil.which("tmux") or "/usr/bin/tmux").parent), str(Path(sys.executable).parent), "/usr/bin", "/bin"}
    return ":".join([str(folder), *sorted(keep)])


def test_doctor_warns_on_a_newer_patch_release_and_fails_on_another_minor(tmp_path: Path) -> None:
    bin_dir = stand_in(tmp_path / "bin", "claude", 'echo "2.1.329 (Claude Code)"')
    stand_in(bin_dir, "codex", 'echo "codex-cli 0.170.0"')
    stand_in(bin_dir, "gemini", 'echo "0.61.0"')
    env = {**os.environ, "PATH": path_with(bin_dir)}
    answer = podctl("doctor", "--json", env=env, check=False)
    assert answer.returncode == 1, "a FAIL row makes doctor exit 1 (scripts and CI can rely on it)"
    rows = {r["check"]: r for r in json.loads(answer.stdout)}
    claude = rows["claude"]
    assert claude["level"] == "warn" and claude["ok"] is True, claude
    assert "2.1.329" in claude["detail"] and "2.1.328 podctl's tests pin" in claude["detail"]
    assert rows["codex"]["level"] == "fail" and "npm install -g @openai/codex@0.169.0" in rows["codex"]["detail"]
    assert rows["gemini"]["level"] == "ok"
    stand_in(bin_dir, "codex", 'echo "codex-cli 0.169.0"')
    healthy = podctl("doctor", env=env, check=False)
    assert healthy.returncode == 0, healthy.stdout
    assert re.search(r"^ok\s+state folder\s+\S+ \(0700\)$", healthy.stdout, re.M), "the mode as chmod takes it"
    stand_in(bin_dir, "codex", 'echo "codex-cli 0.170.0"')
    text = podctl("doctor", env=env, check=False).stdout
    assert re.search(r"^warn\s+claude\s+2\.1\.329", text, re.M) and re.search(r"^FAIL\s+codex", text, re.M), text


def test_doctor_runs_the_clis_version_checks_in_a_throwaway_home_and_never_writes_the_users(tmp_path: Path) -> None:
    """Gemini CLI writes ~/.gemini/projects.json.*.tmp and OpenCode its XDG folders even for --version."""
    writes = ('mkdir -p "$HOME/.gemini" "${XDG_CONFIG_HOME:-$HOME/.config}/opencode" "${XDG_CACHE_HOME:-$HOME/.cache}/x"'
              ' && touch "$HOME/.gemini/projects.json.1.tmp" && echo "0.61.0 home=$HOME"')
    bin_dir = stand_in(tmp_path / "bin", "gemini", writes)
    stand_in(bin_dir, "opencode", writes.replace("0.61.0", "1.0.0"))
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    env = {**os.environ, "PATH": path_with(bin_dir), "HOME": str(user_home)}
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        env.pop(name, None)
    rows = {r["check"]: r for r in json.loads(podctl("doctor", "--json", env=env, check=False).stdout)}
    assert "0.61.0" in rows["gemini"]["detail"], rows["gemini"]
    assert list(user_home.iterdir()) == [], "the user's home is untouched"
    home = re.search(r"home=(\S+)", rows["gemini"]["detail"])
    assert home, rows["gemini"]
    seen = Path(home.group(1))
    assert seen != user_home and not seen.exists(), "the throwaway home is removed afterwards"


def test_the_install_commands_pin_the_versions_the_tests_install() -> None:
    from podctl.hooks.adapter import get_adapter
    from podctl.orchestrator.launch import install_command

    pinned = json.loads((Path(__file__).parents[1] / "clis" / "package.json").read_text())["dependencies"]
    for cli in ("claude", "codex", "gemini"):
        package, _, version = install_command(cli).removeprefix("npm install -g ").rpartition("@")
        assert pinned[package] == version and get_adapter(cli).tested_versions == (version,), cli


def test_a_missing_cli_says_how_to_install_it(tmp_path: Path) -> None:
    pod_file = write_pod(tmp_path / "miss", SLOW.format(name="miss"))
    out = podctl("up", str(pod_file), "--no-attach", check=False, env={**os.environ, "PATH": path_with(tmp_path / "none")})
    assert out.returncode == 1
    assert "agent slow: `claude` (claude) is not on PATH" in out.stderr
    assert "npm install -g @anthropic-ai/claude-code@2.1.328" in out.stderr, out.stderr


def test_up_prints_each_step_while_it_works(tmp_path: Path, pods: Pods) -> None:
    """A CLI that never becomes ready keeps `up` watching for EARLY_EXIT_S: the steps printed before
    that must reach the reader while `up` still runs."""
    bin_dir = stand_in(tmp_path / "bin", "claude", "exec sleep 300")
    pod_file = write_pod(tmp_path / "prog", SLOW.format(name="prog"))
    pods.names.add("prog")
    proc = subprocess.Popen([*PODCTL, "up", str(pod_file), "--no-attach"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PATH": path_with(bin_dir)})
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append((line.rstrip("\n"), proc.poll()))
            if line.startswith("✓ add agent slow"):
                break
    finally:
        rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert seen[0] == ("✓ start broker", None), seen
    assert ("✓ add agent slow", None) in seen, f"the steps arrived only once up was done: {seen}"
    assert "pod prog: up" in rest


def test_up_on_a_terminal_shows_a_spinner_while_a_cli_starts(tmp_path: Path, pods: Pods) -> None:
    bin_dir = stand_in(tmp_path / "bin", "claude", "exec sleep 300")
    pod_file = write_pod(tmp_path / "spin", SLOW.format(name="spin"))
    pods.names.add("spin")
    code, text = run_on_terminal([*PODCTL, "up", str(pod_file), "--no-attach"], {**os.environ, "PATH": path_with(bin_dir)})
    assert code == 0, text
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] waiting for (quick, )?slow to be ready \(\d+\.\ds\)", text), text
    assert "\r\x1b[K" in text, "the spinner is cleared"
    piped = podctl("up", str(pod_file), "--no-attach", env={**os.environ, "PATH": path_with(bin_dir)})
    assert "waiting for" not in piped.stdout + piped.stderr


def test_attach_from_inside_tmux_switches_the_client(tmp_path: Path, tmux_socket: str) -> None:
    """A terminal attached to session `outer` runs `podctl attach inner` in its pane: the client moves
    to `inner` (before: tmux refused, "sessions should be nested with care")."""
    pod_folder("inner", write_pod(tmp_path / "inner", "name: inner\nagents:\n  a: {cli: script}\n"))
    tmux_out("new-session", "-d", "-s", "inner", "-x", "80", "-y", "24")
    tmux_out("new-session", "-d", "-s", "outer", "-x", "80", "-y", "24", "sh")
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    leader, follower = pty.openpty()
    client = subprocess.Popen(["tmux", "-L", tmux_socket, "attach-session", "-t", "=outer"], stdin=follower,
                              stdout=follower, stderr=follower, env={**env, "TERM": "xterm"}, start_new_session=True)
    os.close(follower)

    def client_session() -> str:
        while select.select([leader], [], [], 0)[0]:
            os.read(leader, 65536)
        return tmux_out("list-clients", "-F", "#{client_session}").strip()

    said = tmp_path / "attach.out"
    try:
        wait_until(lambda: client_session() == "outer", timeout=30, message="a client attached to outer")
        command = (f"PODCTL_HOME={env['PODCTL_HOME']} PODCTL_TMUX_SOCKET={tmux_socket} {' '.join(PODCTL)}"
                   f" attach inner > {said} 2>&1; echo exit $? >> {said}")
        tmux_out("send-keys", "-t", "=outer:", command, "Enter")
        wait_until(lambda: said.exists() and "exit" in said.read_text(), timeout=60,
                   message=f"podctl attach to return; the pane: {tmux_out('capture-pane', '-p', '-t', '=outer:')}")
        assert said.read_text().strip() == "exit 0", said.read_text()
        assert wait_until(lambda: client_session() == "inner", timeout=10, message="the client on inner")
    finally:
        client.terminate()
        client.wait(timeout=10)
        os.close(leader)


def test_shim_help_says_how_it_is_run() -> None:
    """`podctl shim -h` prints its usage and exits 0 (it said "unknown argument '-h'" and exited 2)."""
    for flag in ("-h", "--help"):
        shown = podctl("shim", flag)
        assert shown.stdout.startswith("usage: podctl shim --pod POD --agent NAME"), shown.stdout
        for option in ("--socket", "--token-file", "--state", "--wait-cap-ms", "PODCTL_TOKEN", "PODCTL_WAIT_CAP_MS"):
            assert option in shown.stdout, option


def test_a_busy_pod_names_the_command_that_holds_it() -> None:
    """The message said the lock file's raw line (`4242 podctl up`); README quotes `podctl up (pid 4242)`."""
    import pytest
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.pod import applying
    from podctl.pods.errors import PodctlError

    with holding_apply_lock("held", "a test holding it") as holder:
        with pytest.raises(PodctlError) as refused, applying(PodPaths.of("held"), "this test", timeout=0.2):
            pass
        assert str(refused.value).startswith(
            f"pod held is busy: a test holding it (pid {holder.pid}) has been changing it for over"), refused.value
