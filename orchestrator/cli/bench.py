"""`podctl bench`: speed and memory figures of this machine, as text or JSON.

Benchmarks, not tests: they measure and print, they never fail on a slow machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="print the figures as one JSON object (for scripts and comparisons)")]


def _print(figures: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}{key}." if isinstance(sub, dict) else f"{prefix}{key}", sub)
        else:
            typer.echo(f"{prefix:<55} {value}")

    walk("", figures)


def _runner(module: str, function: str) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from importlib import import_module

        figures: dict[str, Any] = getattr(import_module(module), function)()
        return figures

    return run


def register(app: typer.Typer) -> None:
    bench = typer.Typer(help="Measure podctl on this machine (benchmarks, not tests).", no_args_is_help=True)
    app.add_typer(bench, name="bench")

    for name, module, function, doc in (
        ("bus", "podctl.broker.bench", "run_bus_bench",
         "Message bus: tell->read latency, ask->reply round trip through two shims, durable throughput, RSS, shim start."),
        ("up", "podctl.orchestrator.bench", "run_up_bench",
         "Reconciler: `up` of a 3-agent script pod until every window runs, file save -> change applied,"
         " and `up` of 10 script agents until all are ready."),
        ("hooks", "podctl.hooks.bench", "run_hooks_bench",
         "Hooks: latency per event against a bare `python -I -S`, and wake latency from commit to nudge."),
        ("footprint", "podctl.orchestrator.bench_footprint", "run_footprint_bench",
         "Memory and start-up: peak RSS per process of pods of 2 and 10 script agents, shim start, `podctl send`."),
        ("ui", "podctl.orchestrator.bench_ui", "run_ui_bench",
         "Live view: first paint of `podctl ui` in 80x24, and the lag behind a burst of 1,000 messages."),
        ("attention", "podctl.orchestrator.bench_attention", "run_attention_bench",
         "Attention: a CLI's permission event -> blocked in status, and approve -> the tool running (goals: p50 < 1 s)."),
        ("bridge", "podctl.orchestrator.bench_bridge", "run_bridge_bench",
         "A pod across two sites over a local nats-server: ask -> reply across sites, durable messages/s across the bridge."),
        ("usage", "podctl.orchestrator.bench_usage", "run_usage_bench",
         "Usage follower: reading a 50,000-request session file once, a look at unchanged files, append -> counted."),
    ):
        bench.command(name, help=doc)(_command(_runner(module, function)))


def _command(run: Callable[[], dict[str, Any]]) -> Callable[..., None]:
    def command(as_json: JsonOption = False) -> None:
        _print(run(), as_json)

    return command
