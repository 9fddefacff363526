"""The budget decision on its own (broker/budget.py is pure): who is no longer woken, and which notices are owed."""

from __future__ import annotations

from pathlib import Path

from podctl.broker.budget import evaluate
from podctl.pods.load import load_pod
from podctl.pods.usage import Tokens

from ..helpers import write_pod

POD = """\
name: money
pricing: {{m: {{input: 10.0, cached_input: 1.0, output: 20.0}}}}
limits: {{budget_usd: {usd}}}
agents:
  a: {{cli: script}}
  b: {{cli: script}}
"""


def test_a_spent_pod_budget_stops_every_agent_and_a_raised_one_frees_them_with_new_notice_keys(tmp_path: Path) -> None:
    spend = [("a", "m", Tokens(input=100_000, output=10_000, requests=3)), ("a", "unknown-model", Tokens(input=5))]
    spent = evaluate(load_pod(write_pod(tmp_path / "1", POD.format(usd=1.0))), spend)
    assert spent.pod.cost_usd == 1.2 and spent.pod.unpriced == ["unknown-model"]
    assert set(spent.over) == {"a", "b"}, "the pod's money is everyone's"
    [notice] = spent.notices
    assert notice.key == "usd:1.0:100" and "not counting models without a price: unknown-model" in notice.text
    raised = evaluate(load_pod(write_pod(tmp_path / "2", POD.format(usd=1.4))), spend)
    assert raised.over == {} and [n.key for n in raised.notices] == ["usd:1.4:80"]
    plenty = evaluate(load_pod(write_pod(tmp_path / "3", POD.format(usd=100))), spend)
    assert plenty.over == {} and plenty.notices == []


def test_small_amounts_keep_enough_digits_to_mean_something(tmp_path: Path) -> None:
    from podctl.pods.usage import usd

    assert [usd(v) for v in (0, 0.0023, 0.002, 0.05, 0.92, 0.999, 1234.5)] == [
        "$0.00", "$0.0023", "$0.002", "$0.05", "$0.92", "$1.00", "$1,234.50"]
    spec = load_pod(write_pod(tmp_path / "1", POD.format(usd=0.002)))
    [notice] = evaluate(spec, [("a", "m", Tokens(input=230, requests=1))]).notices
    assert "pod money has spent $0.0023 of its $0.002 budget (115%)" in notice.text, notice.text
    assert evaluate(spec, [("a", "m", Tokens(input=230, requests=1))]).over["a"] == "the pod's budget of $0.002 is spent"
