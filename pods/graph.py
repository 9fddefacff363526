"""A pod's topology as a diagram: its agents, review routes (with their mode and timeout), auto-ask
rules (their event and what they ask) and hand-offs, and for a pod across machines the site each agent
runs at, for `podctl graph` and the live view's Graph tab.

Three forms of the same edges: Mermaid and Graphviz DOT to paste into a README or render, and
plain text for a terminal. Everything is read from a validated PodSpec, never from a running pod.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .spec import PodSpec, RuleSpec

Format = Literal["text", "mermaid", "dot"]
FORMATS: tuple[Format, ...] = ("text", "mermaid", "dot")

ANY_AGENT = "*"
"""The sender of a route without `from`, and the agent of a rule without `agent`: any agent."""


@dataclass(frozen=True)
class Edge:
    """One arrow: who may send to whom, and why (a route hop, a rule's ask or hand-off)."""

    source: str
    target: str
    kind: Literal["route", "rule", "handoff"]
    label: str


@dataclass(frozen=True)
class Topology:
    pod: str
    agents: list[tuple[str, str, str]]
    """(name, cli, role) in pod-file order."""
    routes: list[tuple[str, str]]
    """(route name, "mode all, timeout 10m")."""
    edges: list[Edge]
    sites: dict[str, str] = field(default_factory=dict)
    """Agent -> the site it runs at (a pod across machines; empty otherwise)."""
    bridge: str | None = None


def route_node(name: str) -> str:
    return f"route:{name}"


def _rule_label(rule: RuleSpec) -> str:
    detail = f"on {rule.on}"
    if rule.handoff is None:
        detail += f", max {rule.max_rounds} rounds"
        if rule.cooldown not in ("0", "0s"):
            detail += f", cooldown {rule.cooldown}"
    return f"{rule.name} ({detail})"


def topology(spec: PodSpec) -> Topology:
    """The edges of `spec`: a route is a node of its own, between its senders and its members."""
    routes = {r.name for r in spec.routes}
    edges: list[Edge] = []
    for route in spec.routes:
        node = route_node(route.name)
        for sender in route.from_ or [ANY_AGENT]:
            edges.append(Edge(sender, node, "route", "asks"))
        for member in route.to:
            edges.append(Edge(node, member, "route", route.mode))
    for rule in spec.rules:
        source = rule.agent or ANY_AGENT
        if rule.handoff:
            edges.append(Edge(source, rule.handoff, "handoff", _rule_label(rule)))
            continue
        asked = rule.ask if isinstance(rule.ask, list) else [rule.ask] if rule.ask else []
        for name in asked:
            edges.append(Edge(source, route_node(name) if name in routes else name, "rule", _rule_label(rule)))
    return Topology(
        pod=spec.name,
        agents=[(name, agent.cli, agent.role) for name, agent in spec.agents.items()],
        routes=[(r.name, f"mode {r.mode}, timeout {r.timeout}") for r in spec.routes],
        edges=edges,
        sites={name: site for name in spec.agents if (site := spec.site_of(name)) is not None},
        bridge=spec.bridge.url if spec.bridge is not None else None,
    )


def render(spec: PodSpec, fmt: Format = "text") -> str:
    renderers: dict[str, Callable[[Topology], str]] = {"text": as_text, "mermaid": as_mermaid, "dot": as_dot}
    return renderers[fmt](topology(spec))


def _one_line(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def as_text(topo: Topology) -> str:
    width = max(len(name) for name, _, _ in topo.agents)
    lines = [f"pod {topo.pod}", "", "agents"]
    if topo.sites:
        at = max(len(site) for site in topo.sites.values()) + 1
        lines += [f"  {name:<{width}}  {'@' + topo.sites.get(name, '?'):<{at}}  {cli:<8} {_one_line(role)}".rstrip()
                  for name, cli, role in topo.agents]
        lines += ["", f"sites: {', '.join(sorted(set(topo.sites.values())))}, bridged over {topo.bridge}"]
    else:
        lines += [f"  {name:<{width}}  {cli:<8} {_one_line(role)}".rstrip() for name, cli, role in topo.agents]
    if topo.routes:
        lines += ["", "routes (ask(to=<route>))"]
        for name, policy in topo.routes:
            node = route_node(name)
            senders = [e.source for e in topo.edges if e.target == node and e.kind == "route"]
            members = [e.target for e in topo.edges if e.source == node and e.kind == "route"]
            lines.append(f"  {', '.join(senders)} -> {name} -> {', '.join(members)}   ({policy})")
    else:
        lines += ["", "routes: none (agents tell and ask one another by name)"]
    rules = [e for e in topo.edges if e.kind in ("rule", "handoff")]
    if rules:
        lines += ["", "rules"]
        for e in rules:
            target = e.target.removeprefix("route:")
            action = f"hand-off to {target}" if e.kind == "handoff" else f"ask {target}"
            lines.append(f"  {e.label}: {e.source} -> {action}")
    return "\n".join(lines) + "\n"


def _mermaid_id(node: str) -> str:
    """Names are [a-z0-9-]: `-` becomes `_`, and prefixes keep agents and routes apart."""
    if node == ANY_AGENT:
        return "any"
    if node.startswith("route:"):
        return "r_" + node[6:].replace("-", "_")
    return "a_" + node.replace("-", "_")


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def as_mermaid(topo: Topology) -> str:
    lines = ["flowchart LR"]
    for site, agents in _by_site(topo):
        indent = "    " if site else "  "
        if site:
            lines.append(f'  subgraph site_{site.replace("-", "_")}["site {site}"]')
        for name, cli in agents:
            lines.append(f'{indent}{_mermaid_id(name)}["{_mermaid_text(name)}<br/><small>{_mermaid_text(cli)}</small>"]')
        if site:
            lines.append("  end")
    for name, policy in topo.routes:
        label = f"{_mermaid_text(name)}<br/><small>{_mermaid_text(policy)}</small>"
        lines.append(f'  {_mermaid_id(route_node(name))}{{{{"{label}"}}}}')
    if any(ANY_AGENT in (e.source, e.target) for e in topo.edges):
        lines.append('  any(["any agent"])')
    for e in topo.edges:
        source, target = _mermaid_id(e.source), _mermaid_id(e.target)
        label = _mermaid_text(e.label if e.kind != "handoff" else f"hand-off: {e.label}")
        arrow = f'-- "{label}" -->' if e.kind == "route" else f'-. "{label}" .->'
        lines.append(f"  {source} {arrow} {target}")
    return "\n".join(lines) + "\n"


def _by_site(topo: Topology) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """The agents (name, cli) grouped by site, in pod-file order (one group, site None, without sites)."""
    groups: dict[str | None, list[tuple[str, str]]] = {}
    for name, cli, _ in topo.agents:
        groups.setdefault(topo.sites.get(name), []).append((name, cli))
    return list(groups.items())


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def as_dot(topo: Topology) -> str:
    lines = [f"digraph {_dot_text(topo.pod)} {{", "  rankdir=LR;", '  node [shape=box, fontname="sans-serif"];']
    for site, agents in _by_site(topo):
        indent = "    " if site else "  "
        if site:
            lines.append(f"  subgraph {_dot_text('cluster_' + site)} {{ label={_dot_text('site ' + site)};")
        for name, cli in agents:
            lines.append(f"{indent}{_dot_text(name)} [label={_dot_text(name + chr(10) + cli)}];")
        if site:
            lines.append("  }")
    for name, policy in topo.routes:
        lines.append(f"  {_dot_text(route_node(name))} [shape=hexagon, label={_dot_text(name + chr(10) + policy)}];")
    if any(ANY_AGENT in (e.source, e.target) for e in topo.edges):
        lines.append(f'  {_dot_text(ANY_AGENT)} [shape=ellipse, label="any agent"];')
    for e in topo.edges:
        style = "" if e.kind == "route" else ", style=dashed"
        label = e.label if e.kind != "handoff" else f"hand-off: {e.label}"
        lines.append(f"  {_dot_text(e.source)} -> {_dot_text(e.target)} [label={_dot_text(label)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
