"""Tokens and cost per agent, and budgets: the supervisor's follower against a real broker, and script-agent pods
in real tmux whose `usage` steps record model requests the way a CLI does."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from podctl.broker.paths import PodPaths
from podctl.orchestrator.usage_follow import UsageFollower
from podctl.pods.load import load_pod
from podctl.pods.spec import PodSpec
from podctl.pods.usage import Tokens, price_of, summarize

from ..conftest import Pods
from ..helpers import BrokerProcess, pane_text, podctl, status_of, transcript, wait_until, write_pod


def line(key: str, model: str = "m", inp: int = 100, out: int = 10) -> str:
    return json.dumps({"type": "usage", "id": key, "ts": 1_795_000_000, "model": model, "input": inp,
                       "cached_input": 5, "output": out, "reasoning": 1}) + "\n"


def test_the_follower_reads_each_complete_line_once_and_a_replaced_file_again(broker: BrokerProcess) -> None:
    paths = PodPaths.of("bus")
    spec = load_pod(broker.pod_file)
    usage_file = paths.agent_dir("alice") / "script-usage.jsonl"
    usage_file.write_text(line("a") + line("b") + '{"type": "usage", "id": "c", "ts": 1795000000, "mod')

    def scan() -> dict[str, Any]:
        async def once() -> None:
            follower = UsageFollower(paths, lambda: spec)  # a new one each time: as after a supervisor restart
            await follower.scan()
            await follower.close()

        asyncio.run(once())
        with broker.client("user") as user:
            rows = user.call("usage", since=0)["rows"]
            cursors = user.call("usage_cursors")["files"]
        return {"requests": sum(r["requests"] for r in rows), "input": sum(r["input"] for r in rows),
                "offset": cursors[0]["offset"] if cursors else None}

    first = scan()
    assert first == {"requests": 2, "input": 200, "offset": len(line("a") + line("b"))}, "a half-written line waits"
    with usage_file.open("a") as fh:
        fh.write('el": "m", "input": 7, "output": 1}\n' + line("a"))
    assert scan()["requests"] == 3, "the finished line counts, the repeated key does not"
    assert scan()["offset"] == usage_file.stat().st_size
    replacement = usage_file.with_suffix(".new")
    replacement.write_text(line("d", inp=1000))
    os.replace(replacement, usage_file)
    again = scan()
    assert again["requests"] == 4 and again["input"] == 200 + 7 + 1000, "a replaced file is read from its start"
    with broker.client("user") as user:
        assert user.call("usage", since=1_795_000_001)["rows"] == [], "records are dated by the CLI's own time"


def test_prices_come_from_the_pod_file_then_the_shipped_table_and_an_unknown_model_is_never_guessed() -> None:
    assert price_of("claude-sonnet-4-5-20250929") == price_of("claude-sonnet-4-5")
    assert price_of("claude-sonnet-4-5") is not None
    override = {"claude-sonnet-4-5": {"input": 1.0, "cached_input": 0.5, "output": 2.0}}
    price = price_of("claude-sonnet-4-5-20250929", override)
    assert price is not None and price.input == 1.0
    assert price_of("gpt-5-turbo-max") is None
    summary = summarize([("fake", Tokens(1_000_000, 0, 0, 0, 1)), ("claude-sonnet-4-5", Tokens(0, 1_000_000, 1_000_000, 0, 1))],
                        override)
    assert summary.unpriced == ["fake"] and summary.cost_usd == 2.5 and summary.as_json()["cost_usd"] is None


BUDGET_POD = """\
name: {name}
pricing:
  test-model: {{input: 1.0, cached_input: 0.1, output: 2.0}}
limits: {{budget_usd: 1.0, budget_tokens_per_agent: {tokens}}}
agents:
  writer:
    cli: script
    script:
      steps:
        - usage: {{model: test-model, input: 600000, output: 150000}}
        - usage: {{model: test-model, input: 10000, cached_input: 20000, output: 5000, reasoning: 100}}
  reviewer:
    cli: script
"""


def test_a_crossed_budget_stops_the_agents_wakes_and_says_so_and_a_raised_budget_in_the_yaml_resumes_them(
    tmp_path: Path, pods: Pods,
) -> None:
    pod_file = write_pod(tmp_path / "budget", BUDGET_POD.format(name="budget", tokens=500000))
    pods.up(pod_file)
    said = wait_until(lambda: (t := transcript("budget")) and "agent writer has used 785,000" in t and t, timeout=30,
                      message="the writer's usage to cross its token budget")
    assert "of its 500,000 tokens (157%): it is no longer woken" in said
    assert "raise limits.budget_tokens_per_agent in" in said and str(pod_file) in said
    assert "pod budget has spent $0.92 of its $1.00 budget (92%)" in said, "the 80% notice of the pod's money"

    writer = next(a for a in status_of("budget")["agents"] if a["name"] == "writer")
    assert writer["usage"]["input_tokens"] == 610000 and writer["usage"]["cached_input_tokens"] == 20000
    assert writer["usage"]["output_tokens"] == 155000 and writer["usage"]["requests"] == 2
    assert writer["usage"]["cost_usd"] == 0.922
    assert "its 500,000 tokens are used" in writer["over_budget"]

    sent = podctl("send", "budget", "--to", "writer", "please go on").stdout
    assert "over budget" in sent and "not woken until the budget is raised" in sent
    podctl("send", "budget", "--to", "reviewer", "and you?")
    wait_until(lambda: "turn 1 (woken)" in pane_text("budget", "reviewer"), timeout=30, message="the reviewer woken")
    assert "(woken)" not in pane_text("budget", "writer"), "a message to an agent over budget queues, it wakes nobody"
    assert podctl("status", "budget").stdout.count("not woken") == 1

    pod_file.write_text(BUDGET_POD.format(name="budget", tokens=5000000))
    wait_until(lambda: "please go on" in pane_text("budget", "writer"), timeout=30,
               message="the writer woken once the YAML raises its budget")
    said = wait_until(lambda: (t := transcript("budget")) and "limits.budget_tokens_per_agent" in t and t, timeout=30,
                      message="the raised budget reported as applied")
    assert "✓ limits.budget_tokens_per_agent: 500,000 -> 5,000,000" in said and "nothing to change" not in said
    writer = next(a for a in status_of("budget")["agents"] if a["name"] == "writer")
    assert writer["over_budget"] is None


SPEND_POD = """\
name: spend
pricing:
  test-model: {input: 1.0, cached_input: 0.1, output: 2.0}
agents:
  writer:
    cli: script
    script:
      steps:
        - usage: {model: test-model, input: 600000, output: 150000}
        - usage: {model: other, input: 10000, output: 5000}
  reviewer:
    cli: script
"""


def test_usage_groups_by_model_and_hour_and_reads_a_pod_that_is_down(tmp_path: Path, pods: Pods) -> None:
    pod_file = write_pod(tmp_path / "spend", SPEND_POD)
    pods.up(pod_file)
    wait_until(lambda: json.loads(podctl("usage", "spend", "--json").stdout)["total"]["requests"] == 2, timeout=30,
               message="both requests counted")
    podctl("down", "spend")
    data = json.loads(podctl("usage", "spend", "--json", "--by", "model").stdout)
    assert data["agents"]["reviewer"]["requests"] == 0, "every agent is listed, a script agent's own use is zero"
    models = {g["model"]: g for g in data["groups"]}
    assert models["test-model"]["cost_usd"] == 0.9 and models["other"]["cost_usd"] is None
    assert data["total"]["cost_usd"] is None and data["total"]["cost_usd_known_part"] == 0.9
    text = podctl("usage", "spend", "--by", "hour").stdout
    assert "HOUR" in text and "unknown (other: no price)" in text
    assert "(cost in USD at the pod file's pricing)" in text, "not 'the prices in docs/usage.md'"
    assert "600,000" in podctl("usage", "spend", "--by", "model").stdout
    assert json.loads(podctl("usage", "spend", "--json", "--since", "10m").stdout)["total"]["requests"] == 2
    status = podctl("status", "spend").stdout
    assert "usage of the pod:" in status and "+ unknown (other: no price)" in status
    bad = podctl("usage", "spend", "--by", "day", check=False)
    assert bad.returncode == 2 and "--by takes one of agent, model, hour" in bad.stderr


GUARDED_POD = """\
name: guarded
limits: {budget_tokens_per_agent: 1000}
agents:
  alice: {cli: script}
"""


def scan_once(paths: PodPaths, spec: PodSpec) -> None:
    async def once() -> None:
        follower = UsageFollower(paths, lambda: spec)  # a new one each time: as after a supervisor restart
        await follower.scan()
        await follower.close()

    asyncio.run(once())


def test_an_out_of_range_usage_line_is_skipped_with_one_log_line_and_the_rest_counted(
    tmp_path: Path, start_broker: Callable[..., BrokerProcess], caplog: pytest.LogCaptureFixture,
) -> None:
    broker = start_broker(write_pod(tmp_path / "guarded", GUARDED_POD))
    paths, spec = PodPaths.of("guarded"), load_pod(broker.pod_file)
    usage_file = paths.agent_dir("alice") / "script-usage.jsonl"
    bad = [line("long-model", model="m" * 200), line("huge", inp=10**13), line("k" * 300)]
    usage_file.write_text("".join(bad) + "".join(line(f"ok{i}", inp=4000, out=1000) for i in range(10)))
    with caplog.at_level("INFO", logger="podctl.usage"):
        scan_once(paths, spec)
    with broker.client("user") as user:
        rows = user.call("usage", since=0)["rows"]
        alice = next(a for a in user.call("status")["agents"] if a["name"] == "alice")
    assert sum(r["requests"] for r in rows) == 10 and sum(r["input"] for r in rows) == 40_000
    assert alice["over_budget"] and "1,000 tokens are used" in alice["over_budget"], "the budget holds"
    said = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(said) == 1 and "3 lines" in said[0] and "model" in said[0], said


def test_the_broker_refuses_an_out_of_range_record_alone_and_stores_the_rest(broker: BrokerProcess) -> None:
    good = {"key": "g", "model": "m", "ts": 1_795_000_000.0, "input": 5, "cached": 0, "output": 1, "reasoning": 0}
    records = [good, {**good, "key": "x", "model": "m" * 200}, {**good, "key": "y", "output": 10**13},
               {**good, "key": "z", "extra": 1}, "not a record"]
    with broker.client("user") as user:
        answer = user.call("usage_report", of="alice", path="/x.jsonl", inode=1, offset=10, state={}, records=records)
        assert answer == {"added": 1, "refused": 4}
        assert user.call("usage_cursors")["files"][0]["offset"] == 10, "the file's position is kept"


def test_a_line_longer_than_the_limit_is_skipped_once_without_being_held_or_read_again(broker: BrokerProcess) -> None:
    from podctl.orchestrator import usage_follow

    paths = PodPaths.of("bus")
    spec = load_pod(broker.pod_file)
    usage_file = paths.agent_dir("alice") / "script-usage.jsonl"
    limit = getattr(usage_follow, "MAX_LINE_BYTES", 8 << 20)
    usage_file.write_text(line("a") + "x" * (limit + 10))  # no newline yet: the CLI writes on
    scan_once(paths, spec)
    with broker.client("user") as user:
        [cursor] = user.call("usage_cursors")["files"]
    assert cursor["offset"] == usage_file.stat().st_size, "the over-long line is passed, not read again next scan"
    with usage_file.open("a") as fh:
        fh.write(line("tail-of-the-long-line") + line("b"))  # its end looks like a line of its own
    scan_once(paths, spec)
    with broker.client("user") as user:
        total = sum(r["requests"] for r in user.call("usage", since=0)["rows"])
        [cursor] = user.call("usage_cursors")["files"]
    assert total == 2, "a and b: the rest of the over-long line is not a line"
    assert cursor["offset"] == usage_file.stat().st_size


def test_the_usage_table_says_whose_prices_it_used_and_podctl_prices_lists_the_shipped_ones() -> None:
    from podctl.orchestrator.usage_report import lines, prices_used
    from podctl.pods.prices import PRICES_AS_OF
    from podctl.pods.usage import report

    rows = [{"agent": "a", "model": model, "hour": 0, "input": 1000, "cached": 0, "output": 0, "reasoning": 0,
             "requests": 1} for model in ("claude-sonnet-4-5-20250929", "mine", "gpt-5")]
    pricing = {"mine": {"input": 1.0, "cached_input": 0.1, "output": 2.0}}
    used = prices_used(rows, pricing)
    assert used == {"pod_file": ["mine"], "shipped": ["claude-sonnet-4-5-20250929", "gpt-5"], "shipped_as_of": PRICES_AS_OF}
    data = {"pod": "p", "since": None, **report(rows, pricing), "prices": used}
    assert lines(data)[0] == (f"usage of pod p, by agent (cost in USD at the pod file's pricing for mine, podctl's list"
                              f" prices of {PRICES_AS_OF} (`podctl prices`) for the rest)")
    shipped = podctl("prices").stdout.splitlines()
    assert PRICES_AS_OF in shipped[0] and shipped[1].split() == ["MODEL", "INPUT", "CACHED", "INPUT", "OUTPUT"]
    assert any(line.split() == ["claude-sonnet-4-5", "3", "0.3", "15"] for line in shipped), shipped
    table = json.loads(podctl("prices", "--json").stdout)
    assert table["usd_per_million_tokens"]["gpt-5"] == {"input": 1.25, "cached_input": 0.125, "output": 10.0}
