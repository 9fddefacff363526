"""The commands people and scripts run most start fast: no typer, pydantic, pod loader or SDK."""

from __future__ import annotations

import subprocess

import pytest

from ..helpers import PODCTL, BrokerProcess, podctl

HEAVY = ("typer", "click", "pydantic", "yaml", "mcp", "podctl.pods.load", "podctl.pods.spec", "aiosqlite")


@pytest.mark.parametrize(
    "args", [["send", "bus", "--to", "bob", "hi"], ["tail", "bus", "--last", "5"], ["status", "bus", "--json"], ["ls"]]
)
def test_everyday_commands_import_nothing_heavy(broker: BrokerProcess, args: list[str]) -> None:
    proc = subprocess.run([PODCTL[0], "-X", "importtime", *PODCTL[1:], *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY)
    assert not heavy, f"podctl {' '.join(args)} imported {heavy}"


SEND_SPARES = ("dataclasses", "inspect", "typing", "json", "secrets", "hashlib", "asyncio", "re")
"""What `podctl send` does without: it costs at most 1.5x a bare `python -c pass` (podctl bench footprint),
so it imports the wire protocol and the pod lookup, and no module that costs as much as its work."""


def test_send_imports_only_what_a_send_needs(broker: BrokerProcess) -> None:
    argv = [PODCTL[0], "-X", "importtime"]
    baseline = subprocess.run([*argv, "-c", "pass"], capture_output=True, text=True, timeout=60).stderr
    proc = subprocess.run([*argv, *PODCTL[1:], "send", "bus", "--to", "bob", "hi"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def modules(text: str) -> set[str]:
        return {line.split("|")[-1].strip() for line in text.splitlines() if line.startswith("import time")}

    added = modules(proc.stderr) - modules(baseline)
    spared = sorted(m for m in added if m.split(".")[0] in SEND_SPARES)
    assert not spared, f"podctl send imported {spared}"


def test_the_same_options_and_help_through_typer(broker: BrokerProcess) -> None:
    assert "--to" in podctl("send", "--help").stdout
    out = podctl("send", "bus", "--to", "bob", "--to", "carol", "--json", "both of you")
    assert '"recipients"' in out.stdout and "carol" in out.stdout
    wrong = podctl("send", "bus", "--too", "bob", "x", check=False)
    assert wrong.returncode == 2 and "No such option" in wrong.stderr, "what the fast path does not know goes to typer"


@pytest.mark.parametrize("name", ["send", "tail", "status", "ls", "ui"])
def test_the_fast_path_parses_each_option_as_its_typer_command_does(name: str) -> None:
    """The fast path's option table (cli/fast.py) and the typer commands cannot drift: for a command
    line per option of the typer command (made from its declarations), the fast path either parses
    what typer parses (the same names, kinds and values) or defers to typer (returns None); every
    option the fast path knows is declared on the typer command."""
    from podctl.orchestrator.cli import fast
    from podctl.orchestrator.cli.app import build_command

    command = build_command().commands[name]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = {opt: p for p in command.params if p.param_type_name == "option" for opt in (*p.opts, *p.secondary_opts)}
    known = {**fast.FLAGS[name], **fast.VALUES[name]}
    assert tuple(p.name for p in arguments) == fast.POSITIONAL[name], "the same arguments, in the same order"
    assert set(known) <= set(options), f"the fast path knows options typer's {name} does not: {set(known) - set(options)}"

    base = [f"{p.name}-value" for p in arguments]
    for p in command.params:
        if p.param_type_name == "option" and p.required:
            base += [p.opts[0], "7"]
    for opt, param in options.items():
        argv = [*base, opt] + ([] if getattr(param, "is_flag", False) else ["7"])
        parsed = fast.parse(name, argv)
        if opt not in known:
            assert parsed is None, f"podctl {name} {opt}: the fast path must leave it to typer"
            continue
        assert parsed is not None, f"podctl {' '.join([name, *argv])}: the fast path refused what it knows"
        assert known[opt] == param.name and (opt in fast.FLAGS[name]) == bool(getattr(param, "is_flag", False)), opt
        by_typer = command.make_context(name, list(argv)).params
        assert {k: v for k, v in parsed.items() if v != []} == {k: by_typer[k] for k in parsed if parsed[k] != []}, argv
    assert fast.parse(name, [*base, "-h"]) is None and fast.parse(name, [*base, "--help"]) is None
