"""CLI commands of a pod across machines (docs/sites.md): `bridge dev` (a local NATS server with JetStream to
try it), `bridge run` (the bridge in the foreground; `up --site` daemonizes it), `bridge status`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from . import complete

PodArg = Annotated[str, typer.Argument(help="the pod", autocompletion=complete.pods)]


def dev(
    port: Annotated[int, typer.Option(help="the port on 127.0.0.1")] = 4222,
    store: Annotated[Path | None, typer.Option(help="JetStream's folder (default: .nats-dev in PODCTL_HOME)")] = None,
) -> None:
    """Run a NATS server with JetStream on 127.0.0.1 in the foreground, to try sites on one machine."""
    from podctl.orchestrator.nats_link import nats_server_argv
    from podctl.pods.state import state_root

    folder = store or state_root() / ".nats-dev"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = nats_server_argv(port, folder)
    typer.echo(f"NATS with JetStream on nats://127.0.0.1:{port} (store {folder}); in the pod file:"
               f' bridge: {{url: "nats://127.0.0.1:{port}"}}; Ctrl-C stops it', err=True)
    os.execv(argv[0], argv)


def run(pod_file: Annotated[Path, typer.Argument(help="the pod file")]) -> None:
    """Run the pod's bridge to its other sites in the foreground (`podctl up --site NAME` starts it)."""
    from podctl.orchestrator.bridge import run as run_bridge

    raise typer.Exit(run_bridge(pod_file))


def status(pod: PodArg, as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """The pod's sites as this one sees them: the link to NATS, each site's last report, what was refused."""
    from podctl.orchestrator import processes
    from podctl.orchestrator.pod import find
    from podctl.orchestrator.reconcile import user_client
    from podctl.pods.errors import PodctlError

    paths = find(pod)
    with user_client(paths) as client:
        sites = client.call("status").get("sites")
    if sites is None:
        raise PodctlError(f"pod {paths.pod} runs on this machine alone (no bridge, or `up` without --site)")
    sites["bridge_pid"] = processes.bridge_pid(paths)
    if as_json:
        typer.echo(json.dumps(sites, indent=2))
        return
    from .render import site_lines

    for line in site_lines(sites):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    bridge = typer.Typer(help="A pod across machines, bridged over NATS JetStream (docs/sites.md).", no_args_is_help=True)
    app.add_typer(bridge, name="bridge")
    bridge.command("dev")(dev)
    bridge.command("run")(run)
    bridge.command("status")(status)
