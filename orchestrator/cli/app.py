"""The typer application: one module per command group registers its module-level commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, Protocol

import typer
from typer.core import TyperCommand, TyperGroup

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


class _Command(Protocol):
    """What the plain help reads of a click command (TyperCommand and TyperGroup both have it)."""

    options_metavar: str | None

    def get_params(self, ctx: Any) -> list[Any]: ...


class _PlainHelp:
    """Help as Unix tools print it: arguments as POD (required) or [POD] (optional), option values by a
    plain name (N, SECONDS, AGENT), no typer type names (`<bool>`, `<list[Path]>`, `{pod}`).

    Built on click's public `Command` methods (`collect_usage_pieces`, `format_options`) and the
    parameters' public attributes; typer formats the rest (with `rich_markup_mode=None`). The context
    and formatter are typed `Any`: typer does not export the click it vendors."""

    def plain_params(self, params: list[Any] | None) -> None:
        """Name every argument and every option value that has no metavar of its own."""
        for param in params or ():
            if param.metavar is None and (param.param_type_name == "argument" or not (param.is_flag or param.count)):
                param.metavar = (param.name or "").upper()

    def collect_usage_pieces(self: _Command, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces += [_argument_name(param, usage=True)] if param.param_type_name == "argument" else param.get_usage_pieces(ctx)
        if isinstance(self, TyperGroup):
            pieces.append(self.subcommand_metavar)
        return pieces

    def format_options(self: _Command, ctx: Any, formatter: Any) -> None:
        rows: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                rows["Arguments"].append((_argument_name(param), record[1]))
            else:
                rows["Options"].append(record)
        for title, section in rows.items():
            if section:
                with formatter.section(title):
                    formatter.write_dl(section)
        if isinstance(self, TyperGroup):
            self.format_commands(ctx, formatter)


def _argument_name(param: Any, usage: bool = False) -> str:
    name = str(param.metavar)
    if usage and not param.required:
        name = f"[{name}]"
    return f"{name}..." if param.nargs != 1 else name


class PlainCommand(_PlainHelp, TyperCommand):
    def __init__(self, name: str | None, **options: Any) -> None:
        self.plain_params(options.get("params"))
        super().__init__(name, **options)


class PlainGroup(_PlainHelp, TyperGroup):
    def __init__(self, **options: Any) -> None:
        self.plain_params(options.get("params"))
        super().__init__(**options)


def plain_help(app: typer.Typer) -> None:
    """Every command and group of `app`, its sub-apps' included, gets the plain help (unless it names a
    class of its own)."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = PlainCommand
    for group in app.registered_groups:
        if not isinstance(group.cls, type) or group.cls is TyperGroup:  # unset: typer's Default(None)
            group.cls = PlainGroup
        if group.typer_instance is not None:
            plain_help(group.typer_instance)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="podctl",
        help="Run AI coding CLIs as one team: pod files, a durable broker, MCP tools and hooks.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        context_settings=CONTEXT,
        rich_markup_mode=None,
        cls=PlainGroup,
    )
    app.callback()(root)
    for group in (pods, lifecycle, bus, attention, collab, work, usage, agents, bridge, bench):
        group.register(app)
    app.command()(version)
    plain_help(app)
    return app


class _Runnable(Protocol):
    """What `pipe_safe` changes of a click command (typer does not export the click it vendors)."""

    callback: Callable[..., Any] | None


def _ends_quietly_on_a_closed_pipe(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except BrokenPipeError:
            exits.closed_pipe()  # before typer's own handling, which exits 1: the same status as the fast path

    return run


def pipe_safe(command: _Runnable) -> None:
    """Every command's callback ends on a closed output pipe as the fast path does (cli/exits.py)."""
    if command.callback is not None:
        command.callback = _ends_quietly_on_a_closed_pipe(command.callback)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            pipe_safe(sub)


def build_command() -> TyperGroup:
    """The click command tree of the app, with plain help."""
    command = typer.main.get_command(build_app())
    assert isinstance(command, TyperGroup)
    pipe_safe(command)
    return command
