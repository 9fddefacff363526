"""CLI commands of pod files: validate, schema, templates, init."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

INIT_TEMPLATE = """\
# A podctl pod file. Reference: docs/pod-file.md; editors can autocomplete it with
# `podctl schema > pod.schema.json` (yaml-language-server: $schema=pod.schema.json).
name: {name}
{extends}agents:
  writer:
    cli: {writer_cli}             # claude | codex | gemini | script
    role: You implement the task you are given, then ask for review.
    # model: null            # passed to the CLI
    # args: []               # extra CLI arguments
    # env: {{}}                # extra environment
    # restart: never         # never | on-failure | always
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


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(files: Annotated[list[Path], typer.Argument(help="pod files")]) -> None:
        """Check pod files; every error is printed as FILE:LINE:COL: message (exit 1 if any)."""
        from podctl.pods.load import PodFileError, load_pod

        failed = False
        for path in files:
            try:
                spec = load_pod(path)
            except PodFileError as exc:
                failed = True
                for problem in exc.problems:
                    typer.echo(str(problem))
                continue
            typer.echo(f"{path}: ok (pod {spec.name}, {len(spec.agents)} agent{'s' if len(spec.agents) != 1 else ''})")
        if failed:
            raise typer.Exit(1)

    @app.command()
    def schema() -> None:
        """Print the JSON Schema of pod files (for editor autocompletion)."""
        from podctl.pods.spec import PodSpec

        doc = PodSpec.model_json_schema(by_alias=True)
        doc["properties"].pop("source", None)
        doc["required"] = [r for r in doc.get("required", []) if r != "name"]
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["title"] = "podctl pod file"
        typer.echo(json.dumps(doc, indent=2))

    @app.command()
    def templates() -> None:
        """List the built-in templates a pod file can `extends:`."""
        from podctl.pods import catalog

        for name in catalog.names():
            typer.echo(f"{name:<12} {catalog.description(name)}")

    @app.command()
    def init(
        path: Annotated[Path, typer.Argument(help="where to write the pod file")] = Path("pod.yaml"),
        template: Annotated[Optional[str], typer.Option(help="extend a built-in template (see podctl templates)")] = None,
        force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
    ) -> None:
        """Write a commented pod.yaml to start from."""
        from podctl.pods import catalog
        from podctl.pods.spec import NAME_RE

        if path.exists() and not force:
            typer.echo(f"podctl: {path} exists; use --force to overwrite", err=True)
            raise typer.Exit(1)
        folder = path.resolve().parent.name.lower().replace("_", "-").replace(" ", "-")
        name = folder if NAME_RE.match(folder) else "my-pod"
        if template is not None:
            if catalog.path_of(template) is None:
                typer.echo(f"podctl: no template {template!r} (templates: {', '.join(catalog.names())})", err=True)
                raise typer.Exit(1)
            text = EXTENDS_TEMPLATE.format(name=name, template=template, description=catalog.description(template))
        else:
            text = INIT_TEMPLATE.format(name=name, extends="", writer_cli="claude", reviewer_cli="codex")
        path.write_text(text)
        typer.echo(f"wrote {path}; check it with `podctl validate {path}`, start it with `podctl up {path}`")
