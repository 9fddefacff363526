"""Load a pod file into a PodSpec. Every error carries FILE:LINE:COL and says what to do.

Loading resolves `extends` (a built-in template or a path) first: the base is merged under the
file (mappings merge, lists replace, `agents` merge by name, `${var}` in strings is filled from
`vars`), then the result is validated by the pydantic schema and by the checks that need the
whole pod (routes and rules naming agents, durations, regexes).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import catalog
from .durations import seconds
from .positions import DuplicateKey, Mark, PodYamlLoader, Positions, load_with_positions
from .spec import NAME_RE, AgentSpec, Limits, PodSpec, RouteSpec, RuleSpec

__all__ = ["PodFileError", "PodYamlLoader", "Problem", "load_pod", "load_pod_text"]

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class PodFileError(Exception):
    """A pod file that cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Layer:
    file: str
    positions: Positions


class Where:
    """Positions across the files of an `extends` chain, most specific file first."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers

    def _find(self, path: tuple[Any, ...], keys: bool) -> tuple[str, Mark]:
        path = tuple(path)
        for k in range(len(path), -1, -1):
            prefix = path[:k]
            for layer in self.layers:
                table = layer.positions.keys if keys and k == len(path) else layer.positions.values
                if prefix in table:
                    return layer.file, table[prefix]
        return self.layers[0].file, Mark(1, 1)

    def problem(self, path: tuple[Any, ...], message: str, at_key: bool = False) -> Problem:
        file, mark = self._find(path, at_key)
        return Problem(file, mark.line, mark.col, message)


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _read(path: Path, text: str | None = None) -> tuple[dict[str, Any], Positions]:
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise PodFileError([Problem(str(path), 1, 1, f"cannot read the pod file: {exc.strerror or exc}")]) from exc
    try:
        data, positions = load_with_positions(text)
    except DuplicateKey as exc:
        raise PodFileError([Problem(str(path), exc.mark.line, exc.mark.col, str(exc))]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PodFileError([Problem(str(path), line, col, f"bad YAML: {problem}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PodFileError([Problem(str(path), 1, 1, "a pod file must be a mapping (name:, agents:, ...)")])
    return data, positions


def _merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key (so `agents` merge by name); anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return over


def _resolve(path: Path, text: str | None, chain: tuple[Path, ...]) -> tuple[dict[str, Any], list[Layer]]:
    data, positions = _read(path, text)
    layers = [Layer(str(path), positions)]
    extends = data.get("extends")
    if extends is None:
        return data, layers
    where = Where(layers)
    if not isinstance(extends, str) or not extends:
        raise PodFileError([where.problem(("extends",), "extends takes a template name or a path to a pod file")])
    base_path = catalog.find(extends, path.parent)
    if base_path is None:
        names = catalog.names()
        raise PodFileError([where.problem(
            ("extends",),
            f"no built-in template or file {extends!r}{_suggest(extends, names)} (built-in: {', '.join(names)})",
        )])
    if base_path in chain or base_path == path:
        cycle = " -> ".join(p.name for p in (*chain, path, base_path))
        raise PodFileError([where.problem(("extends",), f"extends makes a cycle: {cycle}")])
    base, base_layers = _resolve(base_path, None, (*chain, path))
    base.pop("name", None)
    return _merge(base, data), layers + base_layers


def _substitute(value: Any, variables: dict[str, Any], where: Where, path: tuple[Any, ...], problems: list[Problem]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, variables, where, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, where, (*path, i), problems) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                problems.append(where.problem(
                    path, f"unknown variable ${{{name}}}{_suggest(name, list(variables))}; define it under vars:"
                ))
                return match.group(0)
            return str(variables[name])

        return VAR_RE.sub(fill, value)
    return value


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema model that owns the mapping at `path` (for unknown-key suggestions)."""
    model: type[BaseModel] | None = PodSpec
    i = 0
    while i < len(path) and model is not None:
        part = path[i]
        if model is PodSpec and part == "agents":
            model, i = (AgentSpec, i + 2)
        elif model is PodSpec and part == "routes":
            model, i = (RouteSpec, i + 2)
        elif model is PodSpec and part == "rules":
            model, i = (RuleSpec, i + 2)
        elif model is PodSpec and part == "limits":
            model, i = (Limits, i + 1)
        else:
            return None
    return model if i == len(path) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items() if name != "source"]


def _pydantic_problems(exc: ValidationError, where: Where) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = loc[:-1]
            model = _model_at(parent)
            known = _field_names(model) if model else []
            where_msg = f" in {_dotted(parent)}" if parent else ""
            allowed = f" (allowed: {', '.join(known)})" if known else ""
            problems.append(where.problem(
                loc, f"unknown key {loc[-1]!r}{where_msg}{_suggest(str(loc[-1]), known)}{allowed}", at_key=True
            ))
            continue
        if loc[-1:] == ("[key]",):
            message = err["msg"].removeprefix("Value error, ")
            problems.append(where.problem(loc[:-1], f"{_dotted(loc[:-2]) or 'the pod'}: {message}", at_key=True))
            continue
        field = _dotted(loc) or "the pod"
        if kind == "missing":
            problems.append(where.problem(loc[:-1], f"{field}: missing required key {loc[-1]!r}"))
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            choices = re.findall(r"'([^']*)'", expected)
            problems.append(where.problem(
                loc, f"{field}: {err['input']!r} is not one of {', '.join(choices)}{_suggest(str(err['input']), choices)}"
            ))
        else:
            message = err["msg"].removeprefix("Value error, ")
            problems.append(where.problem(loc, f"{field}: {message}"))
    return problems


def _check_pod(spec: PodSpec, where: Where) -> list[Problem]:
    """Checks that need the whole pod: names that must exist, durations, regexes."""
    problems: list[Problem] = []
    agents = list(spec.agents)
    routes = [r.name for r in spec.routes]

    def need_agent(name: str, path: tuple[Any, ...], what: str) -> None:
        if name not in spec.agents:
            problems.append(where.problem(path, f"{what} names unknown agent {name!r}{_suggest(name, agents)} (agents: {', '.join(agents)})"))

    seen_routes: set[str] = set()
    for i, route in enumerate(spec.routes):
        base = ("routes", i)
        if route.name in spec.agents:
            problems.append(where.problem((*base, "name"), f"route {route.name!r} has the name of an agent; rename one of them"))
        if route.name in seen_routes:
            problems.append(where.problem((*base, "name"), f"duplicate route name {route.name!r}"))
        seen_routes.add(route.name)
        for j, member in enumerate(route.to):
            need_agent(member, (*base, "to", j), f"route {route.name}")
        for j, member in enumerate(route.from_ or []):
            need_agent(member, (*base, "from", j), f"route {route.name}")
        if not route.to:
            problems.append(where.problem((*base, "to"), f"route {route.name} has nobody in `to`"))
        _check_duration(route.timeout, (*base, "timeout"), where, problems)

    seen_rules: set[str] = set()
    for i, rule in enumerate(spec.rules):
        base = ("rules", i)
        if rule.name in seen_rules:
            problems.append(where.problem((*base, "name"), f"duplicate rule name {rule.name!r}"))
        seen_rules.add(rule.name)
        if rule.agent is not None:
            need_agent(rule.agent, (*base, "agent"), f"rule {rule.name}")
        if (rule.ask is None) == (rule.handoff is None):
            problems.append(where.problem(base, f"rule {rule.name} needs exactly one action: `ask` (a route or agents) or `handoff` (an agent)"))
        asked = rule.ask if isinstance(rule.ask, list) else [rule.ask] if rule.ask else []
        targets: list[str] = []
        for j, name in enumerate(asked):
            path = (*base, "ask", j) if isinstance(rule.ask, list) else (*base, "ask")
            if name in routes:
                targets += next(r.to for r in spec.routes if r.name == name)
            elif name in spec.agents:
                targets.append(name)
            else:
                problems.append(where.problem(
                    path, f"rule {rule.name} asks {name!r}, which is neither a route nor an agent{_suggest(name, routes + agents)}"
                ))
        if rule.handoff is not None:
            need_agent(rule.handoff, (*base, "handoff"), f"rule {rule.name}")
            targets.append(rule.handoff)
        if rule.agent is not None and rule.agent in targets:
            problems.append(where.problem(
                (*base, "agent"), f"rule {rule.name} acts for {rule.agent} and would ask {rule.agent} too: a rule never asks the agent it acts for"
            ))
        _check_duration(rule.cooldown, (*base, "cooldown"), where, problems)
        if rule.max_rounds < 1:
            problems.append(where.problem((*base, "max_rounds"), "max_rounds must be at least 1"))
        if rule.on == "pattern":
            regex = rule.when.get("regex")
            if not isinstance(regex, str) or not regex:
                problems.append(where.problem((*base, "when"), f"pattern rule {rule.name} needs when: {{regex: '...'}}"))
            else:
                try:
                    re.compile(regex)
                except re.error as exc:
                    problems.append(where.problem((*base, "when", "regex"), f"bad regex: {exc}"))
        elif rule.on == "file_change" and rule.agent is None:
            problems.append(where.problem(base, f"file_change rule {rule.name} needs `agent` (whose workdir to watch)"))

    for name, agent in spec.agents.items():
        if agent.script is not None and agent.cli != "script":
            problems.append(where.problem(("agents", name, "script"), f"agent {name}: `script` is only for cli: script"))
    return problems


def _check_duration(value: str, path: tuple[Any, ...], where: Where, problems: list[Problem]) -> None:
    try:
        seconds(value)
    except ValueError as exc:
        problems.append(where.problem(path, str(exc)))


def load_pod_text(text: str | None, path: str | Path) -> PodSpec:
    """Load a pod from `text` (or from the file when None), reporting positions in `path`."""
    path = Path(path).resolve()
    data, layers = _resolve(path, text, ())
    where = Where(layers)
    problems: list[Problem] = []
    variables = data.get("vars") if isinstance(data.get("vars"), dict) else {}
    data = _substitute(data, variables, where, (), problems)
    if "source" in data:
        problems.append(where.problem(("source",), "unknown key 'source'", at_key=True))
        data.pop("source")
    if "name" not in data:
        data["name"] = path.parent.name
        if not NAME_RE.fullmatch(data["name"]):
            problems.append(Problem(str(path), 1, 1, f"the folder name {data['name']!r} is not a valid pod name: add a name: key"))
    try:
        spec = PodSpec.model_validate(data)
    except ValidationError as exc:
        raise PodFileError(problems + _pydantic_problems(exc, where)) from None
    problems += _check_pod(spec, where)
    if problems:
        raise PodFileError(problems)
    return spec.model_copy(update={"source": path})


def load_pod(path: str | Path) -> PodSpec:
    return load_pod_text(None, path)
