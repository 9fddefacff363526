"""The documentation says what happens (issue 20, items 10-12).

- Every pod file shown in README.md, docs/*.md and examples/ validates; a block that is deliberately a
  fragment is marked so by an HTML comment `<!-- partial: why -->` on the line before its fence.
- Every full pod file says which CLIs it needs and how many agents it has, in a `# needs:` comment
  (`# needs: claude, codex (2 agents)`, `# needs: nothing (3 agents)` for script agents only), and
  the loaded pod (its `extends` template merged in) has exactly those; examples/README.md says the same
  per example.
- The README's reference (`## Commands`) has a row per command of `podctl --help`, walked through the
  click tree typer builds, with every flag of that command in its row, whether it needs a running pod
  and its exit statuses.
- Every message the docs quote as podctl's output, written **`like this`** (the parts that vary in
  CAPITALS, `…` or 'quoted'), is in the product's sources.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from podctl.orchestrator.cli.app import build_app
from podctl.pods import clis
from podctl.pods.load import PodFileError, load_pod
from podctl.pods.spec import PodSpec

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = ROOT / "examples"
PRODUCT = ["broker", "hooks", "orchestrator", "pods", "scriptagent", "shim"]
PARTIAL = "<!-- partial"

FENCE = re.compile(r"^```ya?ml\n(.*?)^```", re.M | re.S)
NEEDS = re.compile(r"^#\s*needs:\s*(?P<clis>[^(\n]*?)\s*\((?P<count>\d+) agents?\)\s*$", re.M)


def yaml_blocks(doc: Path) -> list[tuple[int, str, bool]]:
    """Each ```yaml block of a markdown file: its first line, its text, whether it is marked partial."""
    text = doc.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1), before.startswith(PARTIAL)))
    return blocks


def doc_pod_files() -> list[Any]:
    files = [*DOCS, *sorted(EXAMPLES.rglob("*.md"))]
    return [pytest.param(text, id=f"{doc.relative_to(ROOT)}:{line}")
            for doc in files for line, text, partial in yaml_blocks(doc) if not partial]


def is_pod_file(path: Path) -> bool:
    """A YAML file of examples/ that is a pod file (not a script agent's script): it has `agents:` or `extends:`."""
    return re.search(r"^(agents|extends):", path.read_text(encoding="utf-8"), re.M) is not None


def example_pod_files() -> list[Path]:
    return sorted(p for ext in ("*.yaml", "*.yml") for p in EXAMPLES.rglob(ext) if is_pod_file(p))


def load(path: Path) -> PodSpec:
    try:
        return load_pod(path)
    except PodFileError as exc:
        pytest.fail(f"{path} does not validate:\n" + "\n".join(str(p) for p in exc.problems))


def check_needs(text: str, spec: PodSpec, where: str) -> None:
    """The `# needs:` comment names exactly the CLIs (other than `script`) the loaded pod runs, and its agent count."""
    header = NEEDS.search(text)
    assert header, f"{where}: no `# needs: CLI, ... (N agents)` comment (`# needs: nothing (N agents)` for script agents)"
    said = {word for word in re.split(r"[,\s]+", header["clis"]) if word and word != "nothing"}
    used = {agent.cli for agent in spec.agents.values()} - {"script"}
    assert said == used, f"{where}: says it needs {sorted(said) or 'nothing'}, its agents run {sorted(used) or 'nothing'}"
    assert int(header["count"]) == len(spec.agents), (
        f"{where}: says {header['count']} agents, it has {len(spec.agents)}: {', '.join(spec.agents)}")


@pytest.mark.parametrize("text", doc_pod_files())
def test_every_pod_file_in_the_docs_validates_and_says_what_it_needs(text: str, tmp_path: Path) -> None:
    pod_file = tmp_path / "docpod" / "pod.yaml"  # a folder with a valid pod name, for a block without `name:`
    pod_file.parent.mkdir()
    pod_file.write_text(text, encoding="utf-8")
    check_needs(text, load(pod_file), "the block")


@pytest.mark.parametrize("path", example_pod_files(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_pod_file_validates_and_says_what_it_needs(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert NEEDS.search(header_comment(text)), f"{path}: no `# needs: ... (N agents)` line in its header comment"
    check_needs(text, load(path), str(path.relative_to(ROOT)))


def header_comment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def examples_table() -> dict[str, str]:
    """examples/README.md's table: the folder of each example -> its `needs` cell."""
    rows: dict[str, str] = {}
    for line in (EXAMPLES / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (folder := re.fullmatch(r"`([\w-]+)/`", cells[0])):
            rows[folder[1]] = cells[-1]
    return rows


def test_examples_readme_says_which_clis_each_example_needs() -> None:
    table = examples_table()
    folders = sorted({p.relative_to(EXAMPLES).parts[0] for p in example_pod_files()})
    assert folders, "no example pod files found"
    known = set(clis.names()) - {"script"}
    for folder in folders:
        assert folder in table, f"examples/README.md has no row for {folder}/"
        used = {agent.cli for path in (EXAMPLES / folder).rglob("*.y*ml") if is_pod_file(path)
                for agent in load(path).agents.values()} - {"script"}
        said = {word for word in re.findall(r"[a-z]+", table[folder]) if word in known}
        assert said == used, f"examples/README.md, {folder}/: says {sorted(said)}, its pod files run {sorted(used)}"


# The reference: every command and flag of `podctl --help`.

def commands() -> dict[str, list[str]]:
    """Every visible command of the click tree typer builds (`rules list`, ...) -> the flags `--help` shows for it."""
    root: Any = typer.main.get_command(build_app())
    found: dict[str, list[str]] = {}

    def walk(command: Any, path: list[str]) -> None:
        context = typer.Context(command)
        if hasattr(command, "list_commands"):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name])
            return
        found[" ".join(path)] = [opt for param in command.params if param.param_type_name == "option" and not param.hidden
                                 for opt in [*param.opts, *param.secondary_opts]]

    walk(root, [])
    found[""] = [opt for param in root.params if param.param_type_name == "option" for opt in param.opts]
    return found


def reference() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Commands\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end > 0 else len(text)]


def reference_rows(section: str) -> dict[str, list[list[str]]]:
    """Table rows of the reference by the command their first cell names (`podctl rules list POD` -> `rules list`)."""
    rows: dict[str, list[list[str]]] = {}
    names = sorted(commands(), key=len, reverse=True)
    for line in section.splitlines():
        if not line.startswith("| `podctl "):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        head = cells[0][len("`podctl "):]
        name = next((n for n in names if n and re.match(re.escape(n) + r"(?=[ `])", head)), None)
        if name is not None:
            rows.setdefault(name, []).append(cells)
    return rows


def reference_gaps(section: str) -> list[str]:
    """What the reference lacks: a row per command, each flag of a command in its row, the root's flags anywhere."""
    rows = reference_rows(section)
    missing = []
    for name, flags in commands().items():
        if not name:
            missing += [f"podctl {flag}" for flag in flags if flag not in section]
            continue
        if len(rows.get(name, [])) != 1:
            missing.append(f"one row `podctl {name} ...` (found {len(rows.get(name, []))})")
            continue
        cells = rows[name][0]
        row = " | ".join(cells)
        missing += [f"podctl {name} {flag}" for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", row)]
        if len(cells) != 4 or not all(cells):
            missing.append(f"podctl {name}: the row needs 4 filled cells (command, what, running pod, exit statuses)")
    return missing


def test_the_readme_reference_has_every_command_and_flag() -> None:
    missing = reference_gaps(reference())
    assert not missing, "README.md `## Commands` lacks:\n" + "\n".join(missing)


# Messages the docs quote as podctl's output.

QUOTED = re.compile(r"\*\*`(.+?)`\*\*")
VARIES = re.compile(r"…|\.\.\.|'[^']*'|\b[A-Z][A-Z0-9_]*\b")


def product_text() -> str:
    """The product's Python sources, adjacent string literals joined (a message split over lines reads whole)."""
    text = "\n".join(p.read_text(encoding="utf-8") for package in PRODUCT for p in sorted((ROOT / package).rglob("*.py")))
    return re.sub(r"[\"']\s*\n\s*(?:#[^\n]*\n\s*)*r?f?[\"']", "", text)


def quoted_messages() -> list[tuple[str, str]]:
    return [(f"{doc.relative_to(ROOT)}:{doc.read_text(encoding='utf-8').count(chr(10), 0, m.start()) + 1}", m[1])
            for doc in DOCS for m in QUOTED.finditer(doc.read_text(encoding="utf-8"))]


def missing_fragments(message: str, source: str) -> list[str]:
    """The literal parts of a quoted message (between the parts that vary, without the punctuation that
    joins two pieces podctl composes) that no product source holds."""
    fragments = [part.strip(" ;:,.()?") for part in VARIES.split(message)]
    return [part for part in fragments if len(part) >= 3 and part not in source]


def test_every_message_the_docs_quote_is_in_the_code() -> None:
    messages = quoted_messages()
    assert len(messages) >= 5, "the docs quote podctl's messages as **`message`**"
    source = product_text()
    wrong = [f"{where}: {message!r} (not found: {missing})" for where, message in messages
             if (missing := missing_fragments(message, source))]
    assert not wrong, "messages the docs quote that podctl does not print:\n" + "\n".join(wrong)


def test_a_made_up_message_or_a_missing_flag_is_caught() -> None:
    """The checks above can fail: a quoted message podctl never prints, a flag the reference lacks."""
    assert missing_fragments("the pod exploded politely: NAME", product_text())
    assert not missing_fragments("no pod file at PATH (create one with `podctl init`)", product_text())
    assert "podctl prune --older-than" in reference_gaps(reference().replace("--older-than", "--older"))


def glob_table() -> list[tuple[list[str], list[str], list[str]]]:
    """docs/pod-file.md's glob table: (globs, paths said to match, paths said not to)."""
    text = (ROOT / "docs" / "pod-file.md").read_text(encoding="utf-8")
    start = text.index("| glob | matches | does not match |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        code = [re.findall(r"`([^`]+)`", cell) for cell in cells]
        rows.append((code[0], code[1], code[2]))
    return rows


def is_path(text: str) -> bool:
    """A file path of the table's examples (`src/app.py`), not a word of its prose (`/`, `src/`, `build`)."""
    return bool(re.fullmatch(r"[\w.-]+(/[\w.-]+)*", text)) and ("/" in text or "." in text)


def test_the_glob_table_of_the_pod_file_docs_is_how_globs_match() -> None:
    from podctl.pods.globs import matches

    rows = glob_table()
    assert len(rows) >= 6
    wrong = []
    for patterns, hits, misses in rows:
        for pattern in patterns:
            if "[" in pattern or "?" in pattern:
                continue  # the character-class row names no paths
            wrong += [f"{pattern} should match {p}" for p in filter(is_path, hits) if not matches(p, [pattern])]
            wrong += [f"{pattern} should not match {p}" for p in filter(is_path, misses) if matches(p, [pattern])]
    assert not wrong, "docs/pod-file.md's glob table is not what pods/globs.py does:\n" + "\n".join(wrong)


def test_the_process_command_lines_of_the_architecture_doc_are_what_runs(tmp_path: Path, pods: Any) -> None:
    """docs/architecture.md named `podctl broker run FILE` and `podctl supervise FILE`; `up` runs neither."""
    from podctl.broker.paths import PodPaths

    from .helpers import write_pod

    pod_file = write_pod(tmp_path / "procs", "name: procs\nagents:\n  solo: {cli: script}\n")
    pods.up(pod_file)
    paths = PodPaths.of("procs")
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for pid_file in (paths.broker_pid, paths.supervisor_pid):
        pid = pid_file.read_text().split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[1:-1]
        shown = " ".join({str(pod_file): "FILE", "procs": "POD"}.get(arg, arg) for arg in argv)
        assert f"`python {shown}`" in doc, f"docs/architecture.md does not name the process `python {shown}`"
