"""CLI commands of attention: `approve`, `deny` (answer an agent's permission request without
attaching) and `wait` (for scripts: until an agent needs someone, or the pod is idle)."""

from __future__ import annotations

from typing import Annotated

import typer

from .bus import AgentArg, PodArg

RequestOption = Annotated[
    int | None, typer.Option("--request", metavar="N", help="answer this request only (the live view passes it)")
]


def approve(
    pod: PodArg,
    agent: AgentArg,
    always: Annotated[bool, typer.Option("--always", help="and never ask again for this same tool call")] = False,
    request: RequestOption = None,
) -> None:
    """Allow what the agent asks to run (its CLI's permission request), without attaching."""
    from podctl.orchestrator.attention import answer

    typer.echo(answer(pod, agent, "always" if always else "allow", request=request))


def deny(
    pod: PodArg,
    agent: AgentArg,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="why: the agent's model reads it")] = "",
    request: RequestOption = None,
) -> None:
    """Refuse what the agent asks to run; its model is told why and goes on."""
    from podctl.orchestrator.attention import answer

    typer.echo(answer(pod, agent, "deny", reason=reason, request=request))


def wait(
    pod: PodArg,
    until: Annotated[str, typer.Option("--until", metavar="STATE", help="blocked | failed | idle")],
    agent: Annotated[str | None, typer.Option("--agent", metavar="AGENT", help="only this agent")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="give up after this many seconds (exit 3)")] = None,
) -> None:
    """Wait until an agent is blocked or failed, or every agent is idle (exit 0; 3 on --timeout; 1 on an error)."""
    from podctl.orchestrator.attention import wait as wait_for

    for line in wait_for(pod, until, agent, timeout):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    for command in (approve, deny, wait):
        app.command()(command)
