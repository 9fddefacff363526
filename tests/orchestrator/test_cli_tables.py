"""The tables people read (`status`, `ls`, `templates`, `rules list`): aligned under a header,
coloured on a terminal only (never with NO_COLOR), plain when piped; `status` says times, the
unread count even at 0, and why a stopped agent stopped; `plan` lists route and rule changes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..conftest import Pods
from ..helpers import PODCTL, BrokerProcess, podctl, run_on_terminal, wait_until, write_pod

ESC = "\x1b["
POD = """\
name: {name}
agents:
  writer:
    cli: script
    script: {{replies: "done: {{text}}"}}
  reviewer: {{cli: script}}
rules:
  - {{name: review, on: turn_end, agent: writer, ask: reviewer, text: "review it", max_rounds: 2}}
"""


def in_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """`podctl ARGS` with its output on a pseudo-terminal, as a person sees it."""
    code, shown = run_on_terminal([*PODCTL, *args], {**os.environ, **(env or {})})
    assert code == 0, shown
    return shown


def aligned(header: str, line: str) -> bool:
    """Each cell starts under its header; UNREAD, a number, ends under its header's end."""
    for word in ("AGENT", "CLI", "STATE", "LAST WAKE", "NOTE"):
        at = header.index(word)
        if line[at] == " " or line[at - 1] != " ":
            return False
    end = header.index("UNREAD") + len("UNREAD")
    return line[end - 1].isdigit() and line[end] == " "


def test_status_ls_and_rules_as_tables_piped_and_on_a_terminal(tmp_path: Path, pods: Pods) -> None:
    pods.up(write_pod(tmp_path / "tab", POD.format(name="tab")))
    assert "reply from writer: done: hi" in podctl("send", "tab", "--to", "writer", "--ask", "hi", "--wait", "30").stdout
    wait_until(lambda: "woken" in podctl("status", "tab").stdout, timeout=30, message="the writer woken")

    piped = podctl("status", "tab").stdout
    assert ESC not in piped
    lines = piped.splitlines()
    header = next(line for line in lines if line.split()[:1] == ["AGENT"])
    assert header.split() == ["AGENT", "CLI", "STATE", "UNREAD", "LAST", "WAKE", "TOKENS", "COST", "NOTE"]
    writer = next(line for line in lines if line.split()[:1] == ["writer"])
    reviewer = next(line for line in lines if line.split()[:1] == ["reviewer"])
    assert aligned(header, writer) and aligned(header, reviewer), f"{header}\n{writer}\n{reviewer}"
    assert re.search(r"\b(idle|busy) for \d+[smh]\b", writer), writer
    assert re.search(r"\b\d\d:\d\d, woken\b", writer), writer
    assert re.search(r"\s0\s", reviewer), f"the unread count even at 0: {reviewer}"

    ls = podctl("ls").stdout.splitlines()
    assert ls[0].split() == ["POD", "STATE", "NEEDS", "YOU", "POD", "FILE"] and ls[1].split()[:3] == ["tab", "up", "0"]
    rules = podctl("rules", "list", "tab").stdout.splitlines()
    assert rules[0].split() == ["RULE", "ON", "FOR", "ROUND", "OPEN", "ASK"]
    assert rules[1].split()[:3] == ["review", "turn_end", "writer"] and re.search(r"\b\d/2\b", rules[1])
    templates = podctl("templates").stdout.splitlines()
    assert templates[0].split() == ["TEMPLATE", "DESCRIPTION"] and any(t.startswith("review-pod ") for t in templates)
    as_data = json.loads(podctl("rules", "list", "tab", "--json").stdout)["rules"]
    assert [(r["name"], r["on"], r["agent"], r["max_rounds"]) for r in as_data] == [("review", "turn_end", "writer", 2)]
    listed = json.loads(podctl("templates", "--json").stdout)
    assert {"name": "review-pod", "description": next(t["description"] for t in listed if t["name"] == "review-pod")} in listed
    assert all(t["description"] for t in listed), listed

    for args in (["status", "tab"], ["ls"], ["rules", "list", "tab"], ["templates"]):
        shown = in_terminal(*args)
        assert f"{ESC}1m" in shown, (args, shown)
        plain = in_terminal(*args, env={"NO_COLOR": "1"})
        assert ESC not in plain, (args, plain)
        if args[0] != "status":  # its durations move on between two runs
            assert re.sub(r"\x1b\[[0-9;]*m", "", shown).split() == plain.split()
    assert f"{ESC}32m" in in_terminal("status", "tab"), "idle agents in green"


def test_status_says_why_a_stopped_agent_stopped(tmp_path: Path, pods: Pods) -> None:
    pods.up(write_pod(tmp_path / "halt", POD.format(name="halt")))
    podctl("down", "halt")
    out = podctl("status", "halt").stdout
    writer = next(line for line in out.splitlines() if line.split()[:1] == ["writer"])
    assert "stopped" in writer and "the pod is down" in writer, out


def test_plan_lists_route_and_rule_changes(tmp_path: Path, broker: BrokerProcess) -> None:
    broker.sync()
    changed = tmp_path / "changed"
    text = broker.pod_file.read_text() + (
        "routes:\n  - {name: reviewers, to: [bob, carol]}\n"
        "rules:\n  - {name: check, on: turn_end, agent: alice, ask: bob, text: check it}\n"
    )
    out = podctl("plan", str(write_pod(changed, text))).stdout
    assert "  route reviewers: added" in out and "  rule check: added" in out, out
    assert "route" not in podctl("plan", str(broker.pod_file)).stdout


def test_tokens_and_cost_have_a_column_each_and_small_costs_keep_their_digits() -> None:
    from podctl.orchestrator.cli.render import STATUS_COLUMNS, agent_row
    from podctl.orchestrator.cli.table import render

    def usage(tokens: int, cost: float | None, known: float = 0.0) -> dict[str, Any]:
        return {"input_tokens": tokens, "cached_input_tokens": 0, "output_tokens": 0, "cost_usd": cost,
                "cost_usd_known_part": cost if cost is not None else known, "unpriced_models": [] if cost else ["x"]}

    agents: list[dict[str, Any]] = [{"name": "cheap", "state": "idle", "usage": usage(171, 0.000513)},
              {"name": "big", "state": "idle", "usage": usage(785_000, 0.92)},
              {"name": "unpriced", "state": "idle", "usage": usage(1500, None, known=0.25)},
              {"name": "unused", "state": "idle"}]
    header, *rows = render(STATUS_COLUMNS, [agent_row(a, 0.0) for a in agents], colour=False)
    assert "TOKENS" in header and "COST" in header and "SPENT" not in header
    cells = {row.split()[0]: row for row in rows}
    assert re.search(r"\b171\s+\$0\.00051\b", cells["cheap"]), cells["cheap"]
    assert re.search(r"\b785k\s+\$0\.92\b", cells["big"]), cells["big"]
    assert re.search(r"\b1\.5k\s+\$0\.25\+\?", cells["unpriced"]), cells["unpriced"]
    assert re.search(r"-\s+-", cells["unused"]), cells["unused"]


def test_an_agent_whose_cli_was_just_started_is_starting_not_idle() -> None:
    from podctl.orchestrator.cli.render import agent_row

    row = agent_row({"name": "w", "state": "idle", "starting": True, "state_ts": 97.0}, 100.0)
    assert row["state"] == "starting for 3s"
    assert agent_row({"name": "w", "state": "idle", "state_ts": 97.0}, 100.0)["state"] == "idle for 3s"
