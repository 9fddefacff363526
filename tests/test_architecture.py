"""The architecture holds: imports run one way (pods <- broker <- orchestrator <- cli), the hook
path and the shim know only the wire protocol, the broker's parts know the broker only through
their host protocols, modules and classes stay small, and the wire protocol's documentation lists
every operation of the op table with who may call it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"pods": "pods", "broker": "broker", "hooks": "hooks", "shim": "shim", "scriptagent": "scriptagent",
           "orchestrator": "orchestrator"}

PROTOCOL = {"podctl.broker.wire", "podctl.broker.codec", "podctl.broker.records", "podctl.broker.calls",
            "podctl.pods.layout"}
"""What the fenced hook path and the relay may know: the wire protocol, its records, the state folder's names."""
ALLOWED: dict[str, set[str]] = {
    "podctl.pods": {"podctl.pods"},
    "podctl.broker": {"podctl.pods", "podctl.broker"},
    "podctl.hooks.path": {"podctl.hooks.path", *PROTOCOL},
    "podctl.hooks": {"podctl.pods", "podctl.hooks", *PROTOCOL},
    "podctl.shim": {"podctl.shim", *PROTOCOL},
    "podctl.scriptagent": {"podctl.scriptagent", "podctl.pods", "podctl.broker.transcript"},
    "podctl.orchestrator": {"podctl.pods", "podctl.broker", "podctl.hooks", "podctl.orchestrator", "podctl.shim"},
}
"""What each part may import of podctl (a prefix allows its submodules). The most specific part
a module belongs to decides."""


def modules() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS.values():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found["podctl." + ".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every podctl module `name` imports, wherever in the file (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("podctl")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("podctl"):
                out |= {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}
    return out


def part_of(name: str) -> str:
    return max((p for p in ALLOWED if name == p or name.startswith(p + ".")), key=len)


def allowed(part: str, target: str) -> bool:
    return any(target == a or target.startswith(a + ".") for a in ALLOWED[part])


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_run_one_way(name: str) -> None:
    path = modules()[name]
    part = part_of(name)
    known = set(modules())
    wrong = sorted(t for t in imports_of(name, path, known) if not allowed(part, t))
    assert not wrong, f"{name} ({part}) may not import {wrong}"


def test_the_wire_protocol_documents_every_operation() -> None:
    from podctl.broker import service, wire

    documented = set(re.findall(r"^- ``(\w+) ", wire.__doc__ or "", re.MULTILINE))
    ops = set(service.OP_ACCESS)
    assert ops == documented, f"undocumented: {sorted(ops - documented)}; documented but gone: {sorted(documented - ops)}"


def test_the_op_table_says_who_may_call_each_operation_as_the_wire_protocol_does() -> None:
    from podctl.broker import service, wire

    items = re.split(r"^- ``", wire.__doc__ or "", flags=re.MULTILINE)[1:]
    user_only = {item.split(" ", 1)[0] for item in items if "(user only" in item.split("\n- ")[0]}
    bridge_doc = (wire.__doc__ or "").split("may call only these, and nobody else may:")[1]
    bridge_only = set(re.findall(r"^- ``(\w+) ", bridge_doc, re.MULTILINE))
    access = service.OP_ACCESS
    assert {op for op, who in access.items() if who == "user"} == user_only
    assert {op for op, who in access.items() if who == "bridge"} == bridge_only
    assert {op for op, who in access.items() if who == "anyone"} == {"hello"}


BROKER_PARTS = ("messaging", "replies", "delivery", "owner_ops", "usage_ops", "site_ops")


@pytest.mark.parametrize("part", BROKER_PARTS)
def test_a_part_of_the_broker_knows_the_rest_only_through_its_host(part: str) -> None:
    """A part imports neither the broker (service.py) nor another part: what it needs of them is in
    its host protocol, so each can be read, and tested, on its own."""
    name = f"podctl.broker.{part}"
    path = modules()[name]
    others = {f"podctl.broker.{p}" for p in BROKER_PARTS if p != part} | {"podctl.broker.service"}
    wrong = sorted(imports_of(name, path, set(modules())) & others)
    assert not wrong, f"{name} imports {wrong}: put what it needs in its host protocol"


MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 400


def test_no_module_is_over_500_lines_and_no_class_over_400() -> None:
    big = []
    for name, path in sorted(modules().items()):
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            big.append(f"{name}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and (node.end_lineno or 0) - node.lineno + 1 > MAX_CLASS_LINES:
                big.append(f"{name}.{node.name}: {(node.end_lineno or 0) - node.lineno + 1} lines")
    assert not big, "split by concern: " + "; ".join(big)



def _imports_nats(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "nats" for alias in node.names)
    return isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "nats"


def _run_on_import(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements a module runs when it is imported (not in functions, not under TYPE_CHECKING)."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            out += _run_on_import(node.orelse)
            continue
        out.append(node)
        for field in ("body", "orelse", "finalbody"):
            out += _run_on_import(getattr(node, field, None) or [])
        for handler in getattr(node, "handlers", None) or []:
            out += _run_on_import(handler.body)
    return out


def test_the_nats_client_is_needed_only_by_the_bridge() -> None:
    """A single-machine install has no `podctl[bridge]` extra: only orchestrator/bridge.py imports the NATS
    client, and only once it runs (at import time for type checking alone)."""
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), str(path))
        if name != "podctl.orchestrator.bridge":
            found = [getattr(node, "lineno", 0) for node in ast.walk(tree) if _imports_nats(node)]
            assert found == [], f"{path}:{found} imports nats: only the bridge may"
            continue
        eager = [node.lineno for node in _run_on_import(tree.body) if _imports_nats(node)]
        assert eager == [], f"{path}:{eager} imports nats when imported: import it where it is used"


DOCUMENTED_PRIVATE = {"_exit"}
"""Underscore names that are documented public API: `os._exit`."""


def test_other_libraries_are_used_through_their_public_names_only() -> None:
    """No module or name with a leading underscore is imported from another library (the standard
    library's C modules, which the fenced hook path imports for speed, aside), no underscore attribute
    is read that podctl does not define itself, and no object's `__class__` is swapped: an upgrade of
    a dependency cannot break podctl silently (the MCP SDK's `_lowlevel_server` and
    `_context_streams`, typer's vendored `typer._click` and a `__class__` swap did)."""
    import sys

    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in modules().items()}
    own = set(DOCUMENTED_PRIVATE)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                own.add(node.name)
            elif isinstance(node, ast.Attribute | ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.attr if isinstance(node, ast.Attribute) else node.id)
            elif isinstance(node, ast.arg):
                own.add(node.arg)

    def private(dotted: str) -> bool:
        top = dotted.split(".", maxsplit=1)[0]
        return not top.startswith("podctl") and top not in sys.stdlib_module_names and any(
            part.startswith("_") and not part.endswith("__") for part in dotted.split(".")
        )

    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [f"{where} import {a.name}" for a in node.names if private(a.name)]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found += [f"{where} from {node.module} import {a.name}" for a in node.names if private(f"{node.module}.{a.name}")]
            elif isinstance(node, ast.Attribute) and node.attr == "__class__" and isinstance(node.ctx, ast.Store):
                found.append(f"{where} assigns __class__")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
                found += [f"{where} reads .{node.attr}"] if node.attr not in own else []
    assert not found, found


def test_each_vocabulary_is_written_once_and_the_runtime_tuples_follow_it() -> None:
    """records.py holds the vocabularies; wire.py's tuples (what the hook path checks at run time)
    and the op table must say the same words, no more, no fewer."""
    from typing import get_args

    from podctl.broker import records, service, wire

    assert set(get_args(records.OpName)) == set(service.OP_ACCESS)
    assert get_args(records.HookEventName) == wire.HOOK_EVENTS
    assert get_args(records.AgentState) == wire.AGENT_STATES
    assert get_args(records.AttentionKind) == wire.ATTENTION_KINDS
    assert get_args(records.Decision) == wire.DECISIONS
    codes = {value for name, value in vars(wire).items() if name.isupper() and isinstance(value, str)
             and name not in ("SYSTEM_SENDER",)}
    assert codes == set(get_args(records.ErrorCode))


LAYOUT_NAMES = (
    "broker.sock", "pod.db", "pod.yaml.path", "applied.json", "broker.lock", "broker.pid", "supervisor.lock",
    "supervisor.pid", "pod.lock", "bridge.lock", "bridge.pid", "bridge.token", ".podctl-pod", "hooks.log",
    "broker.log", "supervisor.log", "bridge.log", ".exit.log",
)


def test_the_state_folders_names_are_written_only_in_its_layout() -> None:
    """pods/layout.py names every file of a pod's state folder; product code takes them from there
    (docstrings and comments may say them)."""
    from podctl.pods import layout

    assert not [n for n in ast.walk(ast.parse(Path(layout.__file__).read_text())) if isinstance(n, ast.Import | ast.ImportFrom)], (
        "pods/layout.py imports nothing (the fenced hook path imports it)"
    )
    found = []
    for name, path in sorted(modules().items()):
        if name == "podctl.pods.layout":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                hits = [n for n in LAYOUT_NAMES if n in node.value]
                if hits:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {hits}")
    assert not found, "take these names from pods/layout.py: " + "; ".join(found)
