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
