"""Budgets: which agents may no longer be woken, and which notices the user is owed.

`limits.budget_usd` caps what the whole pod spends (every agent, since the pod was made);
`limits.budget_tokens_per_agent` caps each agent's tokens (input, cached input and output). At 80%
the user gets a notice in the transcript; at 100% the agents concerned are no longer woken by
messages or rules (their messages queue; a running turn is never interrupted) until the limit is
raised in the pod file, which the running pod applies at once. Pure: the broker feeds it totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podctl.pods.spec import PodSpec
from podctl.pods.usage import Summary, Tokens, summarize, usd

WARN_AT = 0.8


@dataclass(frozen=True)
class Notice:
    key: str
    """Unique per limit value and threshold, so a raised limit can warn again."""
    level: str
    text: str
    over: tuple[str, ...] = ()
    """The agents it puts over budget (none for a warning): `notify: on: over_budget`."""


@dataclass
class Verdict:
    pod: Summary
    agents: dict[str, Summary]
    over: dict[str, str] = field(default_factory=dict)
    """Agent -> why it is no longer woken."""
    notices: list[Notice] = field(default_factory=list)


def evaluate(spec: PodSpec, totals: list[tuple[str, str, Tokens]]) -> Verdict:
    pricing = {name: price.model_dump() for name, price in spec.pricing.items()}
    by_agent: dict[str, list[tuple[str, Tokens]]] = {}
    for agent, model, tokens in totals:
        by_agent.setdefault(agent, []).append((model, tokens))
    verdict = Verdict(
        pod=summarize([(model, tokens) for _, model, tokens in totals], pricing),
        agents={agent: summarize(rows, pricing) for agent, rows in by_agent.items()},
    )
    where = spec.source or "the pod file"
    _pod_budget(spec, verdict, str(where))
    _agent_budgets(spec, verdict, str(where))
    return verdict


def _pod_budget(spec: PodSpec, verdict: Verdict, where: str) -> None:
    budget = spec.limits.budget_usd
    if budget is None:
        return
    spent = verdict.pod.cost_usd
    unknown = (f" (not counting models without a price: {', '.join(verdict.pod.unpriced)})"
               if verdict.pod.unpriced else "")
    _judge(verdict, Limit(
        share=spent / budget, key=f"usd:{budget}", agents=list(spec.agents),
        reason=f"the pod's budget of {usd(budget)} is spent",
        said=f"pod {spec.name} has spent {usd(spent)} of its {usd(budget)} budget ({spent / budget:.0%}){unknown}",
        who="its agents are", whom="to them", field="budget_usd", where=where,
    ))


def _agent_budgets(spec: PodSpec, verdict: Verdict, where: str) -> None:
    limit = spec.limits.budget_tokens_per_agent
    if limit is None:
        return
    for agent, summary in verdict.agents.items():
        used = summary.tokens.total
        _judge(verdict, Limit(
            share=used / limit, key=f"tokens:{agent}:{limit}", agents=[agent] if agent in spec.agents else [],
            reason=f"its {limit:,} tokens are used",
            said=f"agent {agent} has used {used:,} of its {limit:,} tokens ({used / limit:.0%})",
            who="it is", whom="to it", field="budget_tokens_per_agent", where=where,
        ))


@dataclass(frozen=True)
class Limit:
    share: float
    key: str
    agents: list[str]
    reason: str
    said: str
    who: str
    whom: str
    field: str
    where: str


def _judge(verdict: Verdict, limit: Limit) -> None:
    """Over the limit: the agents are over budget and the user is told; past 80%: only told."""
    raise_it = f"raise limits.{limit.field} in {limit.where} (the running pod applies it at once)"
    if limit.share >= 1:
        for agent in limit.agents:
            verdict.over.setdefault(agent, limit.reason)
        verdict.notices.append(Notice(
            f"{limit.key}:100", "warning",
            f"budget: {limit.said}: {limit.who} no longer woken by messages or rules (messages {limit.whom} queue,"
            f" a running turn finishes); to go on, {raise_it}", over=tuple(limit.agents),
        ))
    elif limit.share >= WARN_AT:
        verdict.notices.append(Notice(
            f"{limit.key}:80", "warning", f"budget: {limit.said}; at 100% {limit.who} no longer woken; {raise_it}",
        ))
