"""Checks that need the whole pod: names that must exist, durations, regexes, scripts, rule texts.

They read the merged raw data, not a validated PodSpec, so they still run when the schema found
errors: each check looks only at values of the right type and leaves wrong types to the schema.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import clis
from .attention_checks import check_attention
from .durations import seconds
from .problems import Problem, Where, suggest
from .script import script_errors
from .spec import NAME_RE, RULE_TEXT_FIELDS, socket_path_problem
from .worktree_checks import check_worktrees


@dataclass
class Context:
    """What the checks share: the merged data's positions and the names defined in it."""

    where: Where
    agents: list[str] | None
    """Agent names; None when `agents` is not a mapping (then references are not checked)."""
    routes: dict[str, list[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    dropped: frozenset[str] = frozenset()
    """Agents of the template that the pod file drops (`NAME: null`)."""

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.problems.append(self.where.problem(path, message))

    def need_agent(self, name: Any, path: tuple[Any, ...], what: str) -> None:
        if not isinstance(name, str) or self.agents is None or name in self.agents:
            return
        if name in self.dropped:
            drop = self.where.problem(("agents", name), "", at_key=True)
            own = self.where.problem(path, "").file == self.where.layers[0].file
            fix = (f"take {name} out of it" if own else
                   f"give the pod file its own `{path[0]}:` without {name} (they replace the template's)")
            self.add(path, f"{what} names {name!r}, which the pod file drops ({drop.file}:{drop.line}: `{name}: null`):"
                           f" {fix}, or keep the agent")
            return
        self.add(path, f"{what} names unknown agent {name!r}{suggest(name, self.agents)} (agents: {', '.join(self.agents)})")

    def duration(self, value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, str):
            try:
                seconds(value)
            except ValueError as exc:
                self.add(path, str(exc))


def check_pod(
    data: dict[str, Any], where: Where, base_dir: Path, state_root: Path, dropped: set[str] | None = None
) -> list[Problem]:
    """Every whole-pod problem of the merged data; `base_dir` resolves script paths; `dropped` are
    the template's agents the pod file drops (a route or rule naming one says so)."""
    agents = data.get("agents")
    ctx = Context(where, [a for a in agents if isinstance(a, str)] if isinstance(agents, dict) else None,
                  dropped=frozenset(dropped or ()))
    name = data.get("name")
    if isinstance(name, str) and NAME_RE.fullmatch(name):
        problem = socket_path_problem(name, state_root)
        if problem:
            ctx.add(("name",), problem)
    _check_sites(data, ctx)
    _check_routes(data.get("routes"), ctx)
    _check_rules(data.get("rules"), ctx)
    if isinstance(agents, dict):
        for agent, spec in agents.items():
            if isinstance(spec, dict) and spec.get("script") is not None:
                _check_script(str(agent), spec, base_dir, ctx)
    check_worktrees(data, base_dir, state_root, ctx)
    check_attention(data, ctx)
    return ctx.problems


def _check_sites(data: dict[str, Any], ctx: Context) -> None:
    """With a bridge every agent names its site; without one, the agents are all at one site."""
    agents = data.get("agents")
    if not isinstance(agents, dict):
        return
    specs = {str(n): a for n, a in agents.items() if isinstance(a, dict)}
    bridged = isinstance(data.get("bridge"), dict)
    if bridged:
        for name, spec in specs.items():
            if spec.get("site") is None:
                ctx.add(("agents", name), f"agent {name} needs `site:` (the machine it runs at): the pod has a bridge,"
                        " so each agent runs at one site (docs/sites.md)")
        return
    first: str | None = None
    for name, spec in specs.items():
        site = spec.get("site")
        if not isinstance(site, str):
            continue
        if first is None:
            first = site
        elif site != first:
            ctx.add(("agents", name, "site"), f"agent {name} runs at site {site!r} and others at {first!r}: a pod across"
                    " sites needs `bridge: {url: nats://HOST:4222}` (docs/sites.md)")
            return


def _label(kind: str, item: dict[str, Any], i: int) -> str:
    name = item.get("name")
    return f"{kind} {name}" if isinstance(name, str) else f"{kind}s[{i}]"


def _strings(value: Any) -> list[tuple[int, str]]:
    return [(j, v) for j, v in enumerate(value) if isinstance(v, str)] if isinstance(value, list) else []


def _check_routes(routes: Any, ctx: Context) -> None:
    if not isinstance(routes, list):
        return
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        base, label, name = ("routes", i), _label("route", route, i), route.get("name")
        if isinstance(name, str):
            if ctx.agents is not None and name in ctx.agents:
                ctx.add((*base, "name"), f"route {name!r} has the name of an agent; rename one of them")
            if name in ctx.routes:
                ctx.add((*base, "name"), f"duplicate route name {name!r}")
            ctx.routes.setdefault(name, [m for _, m in _strings(route.get("to"))])
        for key in ("to", "from"):
            for j, member in _strings(route.get(key)):
                ctx.need_agent(member, (*base, key, j), label)
        if route.get("to") == []:
            ctx.add((*base, "to"), f"{label} has nobody in `to`")
        ctx.duration(route.get("timeout"), (*base, "timeout"))


def _check_rules(rules: Any, ctx: Context) -> None:
    if not isinstance(rules, list):
        return
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        base, label, name = ("rules", i), _label("rule", rule, i), rule.get("name")
        if isinstance(name, str):
            if name in seen:
                ctx.add((*base, "name"), f"duplicate rule name {name!r}")
            seen.add(name)
        agent = rule.get("agent")
        ctx.need_agent(agent, (*base, "agent"), label)
        targets = _check_actions(rule, base, label, ctx)
        if isinstance(agent, str) and agent in targets:
            ctx.add((*base, "agent"),
                    f"{label} acts for {agent} and would ask {agent} too: a rule never asks the agent it acts for")
        ctx.duration(rule.get("cooldown"), (*base, "cooldown"))
        rounds = rule.get("max_rounds")
        if isinstance(rounds, int) and not isinstance(rounds, bool) and rounds < 1:
            ctx.add((*base, "max_rounds"), "max_rounds must be at least 1")
        _check_trigger(rule, base, label, ctx)
        if isinstance(rule.get("text"), str):
            for message in text_problems(rule["text"]):
                ctx.add((*base, "text"), f"{label} text: {message}")


def _check_actions(rule: dict[str, Any], base: tuple[Any, ...], label: str, ctx: Context) -> list[str]:
    """Check `ask` and `handoff`; return the agents the rule would ask."""
    ask, handoff = rule.get("ask"), rule.get("handoff")
    if (ask is None) == (handoff is None):
        ctx.add(base, f"{label} needs exactly one action: `ask` (a route or agents) or `handoff` (an agent)")
    asked = [((*base, "ask", j), n) for j, n in _strings(ask)] if isinstance(ask, list) else (
        [((*base, "ask"), ask)] if isinstance(ask, str) else []
    )
    targets: list[str] = []
    for path, name in asked:
        if name in ctx.routes:
            targets += ctx.routes[name]
        elif ctx.agents is None or name in ctx.agents:
            targets.append(name)
        elif name in ctx.dropped:
            ctx.need_agent(name, path, label)
        else:
            hint = suggest(name, [*ctx.routes, *ctx.agents])
            ctx.add(path, f"{label} asks {name!r}, which is neither a route nor an agent{hint}")
    ctx.need_agent(handoff, (*base, "handoff"), label)
    if isinstance(handoff, str):
        targets.append(handoff)
    return targets


def _check_trigger(rule: dict[str, Any], base: tuple[Any, ...], label: str, ctx: Context) -> None:
    """The keys of `when` that the rule's trigger uses (their types and syntax are the schema's)."""
    when, on = rule.get("when", {}), rule.get("on")
    if not isinstance(when, dict):
        when = {}
    if on == "pattern":
        if "regex" not in when:
            ctx.add((*base, "when"), f"pattern {label} needs when: {{regex: '...'}}")
        if "changed" in when:
            ctx.add((*base, "when", "changed"),
                    f"{label}: `changed` filters turn_end and file_change rules; a pattern rule fires on `regex`")
    elif on in ("turn_end", "file_change") and "regex" in when:
        ctx.add((*base, "when", "regex"),
                f"{label}: `regex` is for pattern rules (on: pattern); {on} rules filter with `changed` globs")
    if on == "file_change" and rule.get("agent") is None:
        ctx.add(base, f"file_change {label} needs `agent` (whose workdir to watch)")


def text_problems(text: str) -> list[str]:
    """What is wrong with a rule's `text`, which the broker fills with str.format_map."""
    try:
        fields = _fields(text)
    except ValueError as exc:
        return [f"{exc}: write a literal brace doubled, {{{{ or }}}}"]
    known = list(RULE_TEXT_FIELDS)
    problems: list[str] = []
    for name in dict.fromkeys(fields):
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        if not base:
            problems.append(
                f"{{{name}}} has no placeholder name: use one of {_braced(known)}, or double the braces for a literal {{{{ }}}}"
            )
        elif base not in known:
            problems.append(
                f"unknown placeholder {{{base}}}{suggest(base, known)}"
                f" (known: {_braced(known)}; write {{{{ and }}}} for literal braces)"
            )
    if problems:
        return problems
    try:
        text.format_map({name: "" for name in known})
    except (ValueError, LookupError, AttributeError, TypeError) as exc:
        return [f"cannot be filled in: {exc}"]
    return []


def _fields(text: str) -> list[str]:
    """The field names of a format string, nested format specs included; raises ValueError."""
    names: list[str] = []
    for _, name, spec, _ in string.Formatter().parse(text):
        if name is not None:
            names.append(name)
            if spec and "{" in spec:
                names += _fields(spec)
    return names


def _braced(names: list[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in names)


def _check_script(agent: str, spec: dict[str, Any], base_dir: Path, ctx: Context) -> None:
    script, path = spec["script"], ("agents", agent, "script")
    cli = spec.get("cli")
    if isinstance(cli, str) and cli in clis.names() and not clis.takes_script(cli):
        takers = ", ".join(name for name in clis.names() if clis.takes_script(name))
        ctx.add(path, f"agent {agent}: `script` is only for cli: {takers}")
    if isinstance(script, str):
        problem = _script_file_problem(script, base_dir)
        if problem:
            ctx.add(path, f"agent {agent}: {problem}")
    elif isinstance(script, dict):
        for error in script_errors(script):
            at = (*path, "steps", error.step) if error.step is not None else path
            ctx.add(at, f"agent {agent} script: {error}")


def _script_file_problem(script: str, base_dir: Path) -> str | None:
    """Why the script file cannot be read, resolved the way orchestrator/launch.py does, or None."""
    try:
        target = (base_dir / script).resolve()
        if target.is_file():
            return None
        exists = target.exists()
    except (OSError, ValueError) as exc:
        return f"cannot use script path {script!r}: {exc}"
    if exists:
        return f"script {script!r} ({target}) is not a regular file: give the path of a YAML script file"
    return f"script file {script!r} not found (looked for {target}; a relative path starts at the pod file's folder)"
