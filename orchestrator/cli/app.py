"""The typer application: one module per command group registers its module-level commands."""

from __future__ import annotations

import typer

from . import agents, bench, bus, collab, lifecycle, pods, usage, work


def root() -> None:
    """Run AI coding CLIs as one team."""


def version() -> None:
    """Print podctl's version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("podctl"))


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="podctl",
        help="Run AI coding CLIs as one team: pod files, a durable broker, MCP tools and hooks.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    for group in (pods, lifecycle, bus, collab, work, usage, agents, bench):
        group.register(app)
    app.command()(version)
    return app
