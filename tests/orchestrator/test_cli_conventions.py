"""The conventions of a command-line tool people run all day: --version, -h everywhere, shell
completion, help without internal type names, `ls` with no pods, `validate` of ./pod.yaml, and
`n` at a confirmation."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from ..helpers import BrokerProcess, pod_folder, podctl, write_pod

SOLO = "name: {name}\nagents:\n  solo: {{cli: script}}\n  helper: {{cli: script}}\n"
TYPE_NAMES = re.compile(r"<(bool|str|int|float|path|list\[[^\]]*\])>|\{[a-z_]+\}")


def command_paths() -> list[list[str]]:
    """Every command and sub-command of the app, as the words that name it."""
    from podctl.orchestrator.cli.app import build_command

    def walk(command: Any, prefix: list[str]) -> list[list[str]]:
        subs = getattr(command, "commands", {})
        found = [prefix] if prefix else []
        for name, sub in subs.items():
            if not getattr(sub, "hidden", False):
                found += walk(sub, [*prefix, name])
        return found

    return walk(build_command(), [])


def test_version_flag_and_doctor_say_the_installed_version() -> None:
    out = podctl("--version")
    assert out.stdout.strip() == f"podctl {version('podctl')}"
    rows = {r["check"]: r for r in json.loads(podctl("doctor", "--json", check=False).stdout)}
    assert rows["podctl"]["detail"].startswith(version("podctl")) and rows["podctl"]["level"] == "ok"


def test_every_command_answers_dash_h_without_internal_type_names() -> None:
    paths = command_paths()
    assert ["rules", "list"] in paths and ["status"] in paths and ["bench", "bus"] in paths
    for words in [[], *paths]:
        out = podctl(*words, "-h", env={**os.environ, "COLUMNS": "200"})
        assert out.returncode == 0 and "Usage: podctl" in out.stdout, (words, out.stderr)
        assert not TYPE_NAMES.findall(out.stdout), (words, TYPE_NAMES.findall(out.stdout), out.stdout)
        if "--json" in out.stdout:
            line = next(line for line in out.stdout.splitlines() if "--json" in line)
            assert "JSON" in line, f"podctl {' '.join(words)}: --json is not explained: {line}"
    assert podctl("status", "--help").stdout == podctl("status", "-h").stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_for_each_shell(shell: str) -> None:
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    out = podctl("--show-completion", shell, env=env)
    assert "_PODCTL_COMPLETE" in out.stdout and f"complete_{shell}" in out.stdout, out.stdout
    assert "--install-completion" in podctl("-h").stdout


def complete(words: str) -> list[str]:
    """What bash completes for the command line `words` (the cursor at its end)."""
    env = {**os.environ, "_PODCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    return podctl(env=env).stdout.split()


def test_completion_of_pod_agent_and_template_names(tmp_path: Path) -> None:
    from podctl.broker.paths import PodPaths

    for name in ("alpha", "beta"):
        pod_folder(name, write_pod(tmp_path / name, SOLO.format(name=name)))
    for agent in ("solo", "helper", "user"):
        PodPaths.of("alpha").issue_token(agent)
    assert complete("podctl status ") == ["alpha", "beta"]
    assert complete("podctl down b") == ["beta"]
    assert complete("podctl restart alpha ") == ["helper", "solo"], "the pod's agents, not the human member"
    assert complete("podctl send alpha --to s") == ["solo"]
    assert complete("podctl handoff alpha solo h") == ["helper"]
    assert complete("podctl init --template re") == ["relay", "review-pod"]
    zsh = podctl(env={**os.environ, "_PODCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "podctl tail "}).stdout
    assert "alpha" in zsh and "beta" in zsh
    fish = podctl(env={**os.environ, "_PODCTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                       "_TYPER_COMPLETE_ARGS": "podctl remove alpha "}).stdout
    assert fish.split() == ["helper", "solo"]


def test_completion_of_send_to_offers_agents_routes_and_all(tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    pod = "name: routed\nagents:\n  a: {cli: script}\n  b: {cli: script}\nroutes:\n  - {name: review, to: [b]}\n"
    broker = start_broker(write_pod(tmp_path / "routed", pod))
    assert sorted(complete("podctl send routed --to ")) == ["a", "all", "b", "review"]
    assert complete("podctl send routed --to r") == ["review"]
    broker.stop()
    assert sorted(complete("podctl send routed --to ")) == ["a", "all", "b", "review"], "the pod down too"


def test_ls_with_no_pods_says_so_and_how_to_start_one(podctl_home: Path) -> None:
    out = podctl("ls")
    assert "no pods yet" in out.stdout and "podctl init" in out.stdout and "podctl up" in out.stdout
    assert json.loads(podctl("ls", "--json").stdout) == []


def test_validate_without_a_file_checks_the_pod_yaml_here(tmp_path: Path) -> None:
    folder = tmp_path / "here"
    write_pod(folder, SOLO.format(name="here"))
    out = podctl("validate", cwd=folder)
    assert out.stdout.strip() == "pod.yaml: ok (pod here, 2 agents)"
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = podctl("validate", cwd=empty, check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_up_plan_and_validate_say_there_is_no_pod_file_in_one_wording(tmp_path: Path) -> None:
    """Three wordings for one thing: `up` said "no pod file at", `plan` a fake FILE:1:1 problem, `validate`
    "no such pod file"."""
    said = set()
    for command in ("up", "plan", "validate"):
        out = podctl(command, cwd=tmp_path, check=False)
        assert out.returncode == 1 and out.stdout == "", (command, out.stdout)
        said.add(out.stderr)
    expected = f"podctl: no pod file at {tmp_path / 'pod.yaml'} (create one with `podctl init`, or name the pod file)\n"
    assert said == {expected}, said


def test_delete_without_a_terminal_says_to_pass_yes(tmp_path: Path, podctl_home: Path) -> None:
    """It printed `Aborted.`: no word of what to do."""
    import subprocess

    pod_folder("keep", write_pod(tmp_path / "keep", SOLO.format(name="keep")))
    out = podctl("delete", "keep", stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 1 and "Aborted" not in out.stdout + out.stderr, out
    assert "nothing deleted" in out.stderr and "podctl delete keep --yes" in out.stderr, out.stderr
    assert (podctl_home / "keep").is_dir()


def test_no_at_a_confirmation_does_nothing_and_exits_0(tmp_path: Path, podctl_home: Path) -> None:
    pod_folder("keep", write_pod(tmp_path / "keep", SOLO.format(name="keep")))
    out = podctl("delete", "keep", input="n\n")
    assert out.returncode == 0 and "nothing done" in out.stdout
    assert (podctl_home / "keep").is_dir()
    assert "deleted pod keep" in podctl("delete", "keep", input="y\n").stdout
    assert not (podctl_home / "keep").exists()
