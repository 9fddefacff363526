"""Load a pod file into a PodSpec. Every error carries FILE:LINE:COL and says what to do.

Loading resolves `extends` (a built-in template or a path) first: the base is merged under the
file (mappings merge, lists replace, `agents` merge by name, `${var}` in strings is filled from
`vars`), then the result is validated by the pydantic schema and by the checks that need the
whole pod (pods/checks.py). Both always run, so one run reports every error of a file that
parses; only unreadable files, bad YAML and a bad `extends` stop early.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from . import catalog
from .checks import check_pod
from .errors import PodctlError
from .positions import PodYamlLoader, Positions, YamlLimit, load_with_positions
from .problems import Layer, PodFileError, Problem, Where, dotted, suggest
from .spec import NAME_RE, AgentSpec, BridgeSpec, Limits, PodSpec, RouteSpec, RuleSpec, RuleWhen
from .state import state_root as default_state_root

__all__ = ["PodFileError", "PodFileMissing", "PodYamlLoader", "Problem", "load_pod", "load_pod_text", "read_pod_text"]

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_FILE_BYTES = 1 << 20
"""A pod file is a few KB; anything over 1 MiB is the wrong file or an attack."""

YAML_HINTS = (
    ("mapping values are not allowed here", "a value with ': ' in it needs quotes, or this line is indented wrong"),
    ("expected <block end>", "this line is indented differently from the lines above it"),
    ("could not find expected ':'", "a key needs ': ' after it, or a line above is indented wrong"),
    ("found undefined alias", "write the &anchor before the *alias that uses it"),
    ("found duplicate anchor", "give each &anchor its own name"),
    ("but found another document", "a pod file is one YAML document: remove the second '---'"),
    ("but got '<stream end>'", "close the bracket or brace"),
)


def _too_large(file: str, size: int) -> PodFileError:
    return PodFileError([Problem(file, 1, 1, f"pod file too large: {size} bytes, over the 1 MiB limit; is it the right file?")])


class PodFileMissing(PodctlError):
    """No pod file where one was expected: one message for every command that reads one."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no pod file at {path} (create one with `podctl init`, or name the pod file)")
        self.path = path


class NotRegularFile(OSError):
    """What `read_regular` raises for a path that is no regular file."""


def read_regular(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a regular file. It is opened without blocking and checked once
    open, so a FIFO or a device put in its place is refused at once (OSError) instead of blocking
    the reader forever; FileNotFoundError when there is nothing there."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, "it is not a regular file (a FIFO, a device or a folder)")
        return fh.read(limit + 1)


def read_pod_text(path: Path) -> str:
    """The text of a pod file: a regular UTF-8 file of at most MAX_FILE_BYTES, else a PodFileError
    (PodFileMissing when there is none)."""
    file = str(path)
    try:
        raw = read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise PodFileMissing(path) from None
    except NotRegularFile:
        raise PodFileError([Problem(file, 1, 1, "cannot read the pod file: it is not a regular file (a FIFO, a device"
                                                " or a folder): save the pod file as a plain file")]) from None
    except OSError as exc:
        raise PodFileError([Problem(file, 1, 1, f"cannot read the pod file: {exc.strerror or exc}")]) from exc
    if len(raw) > MAX_FILE_BYTES:
        try:
            size = path.stat().st_size
        except OSError:
            size = len(raw)
        raise _too_large(file, size)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line, col = before.count(b"\n") + 1, len(before.rsplit(b"\n", 1)[-1].decode("utf-8")) + 1
        raise PodFileError([Problem(file, line, col, "the pod file is not UTF-8 text: save it as UTF-8")]) from exc


def _read_text(path: Path, text: str | None) -> str:
    """The file's text (`text` when given), refusing what is not a regular UTF-8 file of at most MAX_FILE_BYTES."""
    if text is None:
        return read_pod_text(path)
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_FILE_BYTES:
        raise _too_large(str(path), size)
    return text


def _yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    """A parser error said as what to fix, at the place to fix it."""
    problem = str(getattr(exc, "problem", None) or exc)
    context = getattr(exc, "context", None)
    problem_mark, context_mark = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    if "cannot start any token" in problem and ("'\\t'" in problem or "'\t'" in problem) and problem_mark:
        return Problem(file, problem_mark.line + 1, problem_mark.column + 1, "a tab character: YAML indents with spaces only")
    if context == "while scanning a quoted scalar" and "end of stream" in problem and context_mark:
        return Problem(file, context_mark.line + 1, context_mark.column + 1, "unterminated quote: close the string started here")
    mark = problem_mark or context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if context and problem.startswith("but "):
        message = f"bad YAML: {context}, {problem}"
    else:
        message = f"bad YAML: {problem}"
        if context and context_mark and context_mark is not mark:
            message += f" ({context} started at line {context_mark.line + 1}, column {context_mark.column + 1})"
    hint = next((h for key, h in YAML_HINTS if key in problem), None)
    return Problem(file, line, col, f"{message}; {hint}" if hint else message)


def _read(path: Path, text: str | None = None) -> tuple[dict[str, Any], Positions]:
    file = str(path)
    text = _read_text(path, text)
    try:
        data, positions = load_with_positions(text)
    except YamlLimit as exc:
        raise PodFileError([Problem(file, exc.mark.line, exc.mark.col, str(exc))]) from exc
    except yaml.YAMLError as exc:
        raise PodFileError([_yaml_problem(file, exc)]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PodFileError([Problem(file, 1, 1, "a pod file must be a mapping (name:, agents:, ...)")])
    return data, positions


def _duplicates(layers: list[Layer]) -> list[Problem]:
    return [
        Problem(layer.file, dup.mark.line, dup.mark.col, str(dup))
        for layer in layers for dup in layer.positions.duplicates
    ]


def _merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key (so `agents` merge by name); anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return over


def _resolve(
    path: Path, text: str | None, chain: tuple[Path, ...]
) -> tuple[dict[str, Any], list[Layer], set[str]]:
    """The file merged over its `extends` chain, its layers, and the inherited agents it drops."""
    data, positions = _read(path, text)
    layers = [Layer(str(path), positions)]
    extends = data.get("extends")
    if extends is None:
        return data, layers, set()
    where = Where(layers)

    def fail(message: str) -> PodFileError:
        return PodFileError([*_duplicates(layers), where.problem(("extends",), message)])

    if not isinstance(extends, str) or not extends:
        raise fail("extends takes a template name or a path to a pod file")
    base_path = catalog.find(extends, path.parent)
    if base_path is None:
        names = catalog.names()
        raise fail(f"no built-in template or file {extends!r}{suggest(extends, names)} (built-in: {', '.join(names)})")
    if base_path in chain or base_path == path:
        raise fail(f"extends makes a cycle: {' -> '.join(p.name for p in (*chain, path, base_path))}")
    try:
        base, base_layers, dropped = _resolve(base_path, None, (*chain, path))
    except PodFileError as exc:
        raise PodFileError([*_duplicates(layers), *exc.problems]) from None
    base.pop("name", None)
    merged = _merge(base, data)
    return merged, layers + base_layers, _drop_inherited(merged, base.get("agents"), data.get("agents"), dropped)


def _drop_inherited(merged: dict[str, Any], base: Any, own: Any, dropped: set[str]) -> set[str]:
    """`agents: {NAME: null}` drops the agent NAME its template gives (mappings merge, so leaving it
    out would keep it). A null for an agent no template gives stays, for load_pod_text to report."""
    agents = merged.get("agents")
    if not isinstance(agents, dict):
        return dropped
    dropped = {name for name in dropped if name not in agents}
    if isinstance(own, dict) and isinstance(base, dict):
        for name, value in own.items():
            if value is None and isinstance(base.get(name), dict):
                del agents[name]
                dropped.add(name)
    return dropped


def _empty_agents(data: dict[str, Any], where: Where) -> list[Problem]:
    """Agents written as `NAME: null` that no template gives: reported once, here, then left out."""
    agents = data.get("agents")
    if not isinstance(agents, dict):
        return []
    problems = []
    for name in [n for n, v in agents.items() if v is None]:
        del agents[name]
        problems.append(where.problem(("agents", name), (
            f"agents.{name} is empty: `{name}: null` drops an agent that the pod's `extends` template gives, and"
            f" {'no template gives' if data.get('extends') else 'this pod file extends no template with'} an agent"
            f" {name!r}; give it a cli ({name}: {{cli: ...}}) or remove the line"
        ), at_key=True))
    return problems


def inherited_agents(text: str, path: Path) -> set[str]:
    """The agents a pod file's `extends` chain gives it, before its own entries (`podctl remove` of
    one of them must drop it with `NAME: null`: deleting the file's entry would leave the template's)."""
    path = path.resolve()
    data, _ = _read(path, text)
    extends = data.get("extends")
    base_path = catalog.find(extends, path.parent) if isinstance(extends, str) and extends else None
    if base_path is None or base_path == path:
        return set()
    base, _, _ = _resolve(base_path, None, (path,))
    agents = base.get("agents")
    return {name for name, value in agents.items() if isinstance(value, dict)} if isinstance(agents, dict) else set()


def files_named(spec: PodSpec) -> set[Path]:
    """The files a loaded pod depends on besides its pod file: the pod files it `extends` (not the
    built-in templates) and its agents' `script:` files. A change to one changes the pod as much as
    a save of the pod file does (the supervisor watches them all)."""
    assert spec.source is not None, "a spec loaded from a file"
    found: set[Path] = set()
    path, seen = spec.source, {spec.source}
    while True:
        try:
            data, _ = _read(path)
        except PodctlError:
            break
        extends = data.get("extends")
        base = catalog.find(extends, path.parent) if isinstance(extends, str) and extends else None
        if base is None or base in seen or base.parent == catalog.TEMPLATES_DIR:
            break
        found.add(base)
        seen.add(base)
        path = base
    for agent in spec.agents.values():
        if isinstance(agent.script, str):
            found.add((spec.base_dir() / agent.script).resolve())
    return found


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
                    path, f"unknown variable ${{{name}}}{suggest(name, list(variables))}; define it under vars:"
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
        elif model is PodSpec and part == "bridge":
            model, i = (BridgeSpec, i + 1)
        elif model is RuleSpec and part == "when":
            model, i = (RuleWhen, i + 1)
        else:
            return None
    return model if i == len(path) else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items() if name != "source"]


def _env_example(value: Any) -> str | None:
    """How a non-string env value is written as a string, or None if it is not a plain scalar."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else None


def _pydantic_problems(exc: ValidationError, where: Where) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = loc[:-1]
            model = _model_at(parent)
            known = _field_names(model) if model else []
            where_msg = f" in {dotted(parent)}" if parent else ""
            allowed = f" (allowed: {', '.join(known)})" if known else ""
            problems.append(where.problem(
                loc, f"unknown key {loc[-1]!r}{where_msg}{suggest(str(loc[-1]), known)}{allowed}", at_key=True
            ))
            continue
        message = err["msg"].removeprefix("Value error, ")
        if loc[-1:] == ("[key]",):
            problems.append(where.problem(loc[:-1], f"{dotted(loc[:-2]) or 'the pod'}: {message}", at_key=True))
            continue
        field = dotted(loc) or "the pod"
        in_env = kind == "string_type" and len(loc) == 4 and loc[0] == "agents" and loc[2] == "env"
        example = _env_example(err.get("input")) if in_env else None
        if kind == "missing":
            problems.append(where.problem(loc[:-1], f"{field}: missing required key {loc[-1]!r}"))
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            choices = re.findall(r"'([^']*)'", expected)
            problems.append(where.problem(
                loc, f"{field}: {err['input']!r} is not one of {', '.join(choices)}{suggest(str(err['input']), choices)}"
            ))
        elif example is not None:
            problems.append(where.problem(loc, f'{field}: env values are strings: quote it, e.g. {loc[3]}: "{example}"'))
        else:
            problems.append(where.problem(loc, f"{field}: {message}"))
    return problems


def load_pod_text(text: str | None, path: str | Path, state_root: Path | None = None) -> PodSpec:
    """Load a pod from `text` (or from the file when None), reporting positions in `path`.

    `state_root` (default: pods/state.py's rule) is where the broker socket will live; a pod
    name too long for it is an error here rather than at `podctl up`.
    """
    path = Path(path).resolve()
    data, layers, dropped = _resolve(path, text, ())
    where = Where(layers)
    problems = _duplicates(layers) + _empty_agents(data, where)
    raw_vars = data.get("vars")
    variables: dict[str, Any] = raw_vars if isinstance(raw_vars, dict) else {}
    data = _substitute(data, variables, where, (), problems)
    if "source" in data:
        problems.append(where.problem(("source",), "unknown key 'source'", at_key=True))
        data.pop("source")
    if "name" not in data:
        data["name"] = path.parent.name
        if not NAME_RE.fullmatch(data["name"]):
            message = f"the folder name {data['name']!r} is not a valid pod name: add a name: key"
            problems.append(Problem(str(path), 1, 1, message))
    spec: PodSpec | None = None
    try:
        spec = PodSpec.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, where)
    problems += check_pod(data, where, path.parent, state_root or default_state_root(), dropped)
    if problems or spec is None:
        raise PodFileError(where.in_order(problems))
    return spec.model_copy(update={"source": path})


def load_pod(path: str | Path, state_root: Path | None = None) -> PodSpec:
    return load_pod_text(None, path, state_root)
