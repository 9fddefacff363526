"""CLI commands of pod files: validate, schema, templates, init, graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from podctl.pods.errors import PodctlError

from . import complete

INIT_TEMPLATE = """\
# A podctl pod file. Reference: docs/pod-file.md; editors can autocomplete it with
# `podctl schema > pod.schema.json` (yaml-language-server: $schema=pod.schema.json).
name: {name}
{extends}agents:
  writer:
    cli: {writer_cli}             # {clis}
    role: You implement the task you are given, then ask for review.
    # model: null            # passed to the CLI
    # args: []               # extra CLI arguments
    # env: {{}}                # extra environment
    # restart: never         # never | on-failure | always
    # worktree: true         # its own git worktree and branch (podctl/{name}/writer); needs a git repository
  reviewer:
    cli: {reviewer_cli}
    role: You review diffs and answer with concrete findings.
routes:
  - name: review             # agents can ask(to="review")
    from: [writer]
    to: [reviewer]
    mode: all                # all: every member answers; first: the first answer wins
    timeout: 10m
rules: []                    # auto-ask rules, e.g. review on every turn end (see docs/pod-file.md)
limits: {{message_bytes: 65536}}
"""

EXTENDS_TEMPLATE = """\
# A podctl pod file extending the built-in template {template!r} ({description}).
# Merge rules: mappings merge, lists replace, agents merge by name; `vars` fill ${{...}} in the template.
name: {name}
extends: {template}
vars: {{}}
agents: {{}}                   # override or add agents here, e.g. writer: {{model: ...}}
"""


def validate(files: Annotated[list[Path] | None, typer.Argument(help="pod files (default: ./pod.yaml)")] = None) -> None:
    """Check pod files; every error is printed as FILE:LINE:COL: message (exit 1 if any)."""
    from podctl.pods.load import PodFileError, PodFileMissing, load_pod

    failed = False
    for path in files or [Path("pod.yaml")]:
        try:
            spec = load_pod(path)
        except PodFileMissing as exc:
            failed = True
            typer.echo(f"podctl: {exc}", err=True)
            continue
        except PodFileError as exc:
            failed = True
            for problem in exc.problems:
                typer.echo(str(problem))
            continue
        typer.echo(f"{path}: ok (pod {spec.name}, {len(spec.agents)} agent{'s' if len(spec.agents) != 1 else ''})")
        from podctl.orchestrator.permissions import notes

        for note in notes(spec):
            typer.echo(f"  note: {note}")
    if failed:
        raise typer.Exit(1)


def schema() -> None:
    """Print the JSON Schema of pod files (for editor autocompletion)."""
    from podctl.pods.spec import PodSpec

    typer.echo(json.dumps(PodSpec.json_schema(), indent=2))


def templates(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON array of {name, description} (for scripts)")] = False,
) -> None:
    """List the built-in templates a pod file can `extends:`."""
    from podctl.pods import catalog

    from .table import Column, colour_wanted, render

    rows = [{"name": name, "description": catalog.description(name)} for name in catalog.names()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for line in render([Column("TEMPLATE", "name"), Column("DESCRIPTION", "description")], rows, colour_wanted()):
        typer.echo(line)


def init(
    path: Annotated[Path, typer.Argument(help="where to write the pod file")] = Path("pod.yaml"),
    template: Annotated[str | None, typer.Option(
        metavar="NAME", help="extend a built-in template (see podctl templates)", autocompletion=complete.templates,
    )] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented pod.yaml to start from."""
    from podctl.pods import catalog, clis
    from podctl.pods.spec import NAME_RE

    if path.exists() and not force:
        raise PodctlError(f"{path} exists; use --force to overwrite")
    folder = path.resolve().parent.name.lower().replace("_", "-").replace(" ", "-")
    name = folder if NAME_RE.fullmatch(folder) else "my-pod"
    if template is not None:
        if catalog.path_of(template) is None:
            raise PodctlError(f"no template {template!r} (templates: {', '.join(catalog.names())})")
        text = EXTENDS_TEMPLATE.format(name=name, template=template, description=catalog.description(template))
    else:
        text = INIT_TEMPLATE.format(
            name=name, extends="", writer_cli="claude", reviewer_cli="codex", clis=" | ".join(clis.names())
        )
    path.write_text(text)
    typer.echo(f"wrote {path}; check it with `podctl validate {path}`, start it with `podctl up {path}`")


def graph(
    pod: Annotated[
        str, typer.Argument(help="a pod file (or the name of a pod: its recorded pod file)", autocompletion=complete.pods)
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text | mermaid | dot")] = "text",
) -> None:
    """Draw the pod's topology: agents, routes, rules and hand-offs (paste mermaid into a README)."""
    from podctl.pods.graph import FORMATS, render
    from podctl.pods.load import load_pod

    if fmt not in FORMATS:
        raise PodctlError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    path = Path(pod)
    if not path.is_file() and ("/" in pod or path.suffix in (".yaml", ".yml")):
        raise PodctlError(f"no pod file {path}: give a pod file or the name of a pod")
    if not path.is_file():
        from podctl.orchestrator.podref import find, recorded_file

        recorded = recorded_file(find(pod))
        if recorded is None:
            raise PodctlError(f"pod {pod!r} has no recorded pod file: give the pod file's path")
        path = recorded
    typer.echo(render(load_pod(path), fmt), nl=False)


def register(app: typer.Typer) -> None:
    for command in (validate, schema, templates, init, graph):
        app.command()(command)
