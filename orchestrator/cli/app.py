"""The typer application: one module per command group registers its module-level commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import core as click  # typer 0.29 vendors its own click
from typer.core import TyperArgument, TyperGroup, TyperOption

from . import agents, attention, bench, bridge, bus, collab, exits, lifecycle, pods, usage, work

CONTEXT = {"help_option_names": ["-h", "--help"]}
"""`-h` as well as `--help`, on every command (click hands it down to sub-contexts)."""


def podctl_version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("podctl")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"podctl {podctl_version()}")
        raise typer.Exit()


def root(
    _version: Annotated[
        bool, typer.Option("--version", help="print podctl's version and exit", is_eager=True, callback=_print_version)
    ] = False,
) -> None:
    """Run AI coding CLIs as one team."""


def version() -> None:
    """Print podctl's version."""
    typer.echo(podctl_version())


class _Argument(TyperArgument):
    """An argument shown as POD (required) or [POD] (optional), as Unix tools do."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return f"{name}..." if self.nargs != 1 else name


VALUE_NAMES: dict[Any, str] = {int: "N", float: "SECONDS", Path: "PATH"}


class _Option(TyperOption):
    """An option shown with a plain value name (N, SECONDS, TEXT), a flag with none."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        annotation = getattr(getattr(self, "type_descriptor", None), "annotation", str)
        return VALUE_NAMES.get(annotation, "TEXT")


def plain_help(command: click.Command) -> None:
    """Help without typer's internal type names (`<bool>`, `<list[Path]>`, `{pod}`): every parameter of
    every command, its help option included, is shown the plain way."""
    context = click.Context(command, help_option_names=CONTEXT["help_option_names"])
    for param in [*command.params, command.get_help_option(context)]:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
        elif type(param) is TyperOption:
            param.__class__ = _Option
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_help(sub)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="podctl",
        help="Run AI coding CLIs as one team: pod files, a durable broker, MCP tools and hooks.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        context_settings=CONTEXT,
    )
    app.callback()(root)
    for group in (pods, lifecycle, bus, attention, collab, work, usage, agents, bridge, bench):
        group.register(app)
    app.command()(version)
    return app


def _ends_quietly_on_a_closed_pipe(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except BrokenPipeError:
            exits.closed_pipe()  # before typer's own handling, which exits 1: the same status as the fast path

    return run


def pipe_safe(command: click.Command) -> None:
    """Every command's callback ends on a closed output pipe as the fast path does (cli/exits.py)."""
    if command.callback is not None:
        command.callback = _ends_quietly_on_a_closed_pipe(command.callback)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            pipe_safe(sub)


def build_command() -> click.Command:
    """The click command tree of the app, with plain help."""
    command: Any = typer.main.get_command(build_app())
    plain_help(command)
    pipe_safe(command)
    assert isinstance(command, click.Command)
    return command
