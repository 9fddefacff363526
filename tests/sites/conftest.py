"""Fixtures of a pod across machines: a real nats-server and two sites, each with its own PODCTL_HOME."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..helpers import write_pod
from .harness import NatsServer, SiteProcesses, python_children_named, site_env

POD = """\
name: span
bridge: {{url: "{url}"}}
agents:
  writer: {{cli: script, site: a, role: writes}}
  reviewer: {{cli: script, site: b, role: reviews}}
{extra}"""


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
def two_sites(tmp_path: Path, nats_server: NatsServer) -> Iterator[Callable[..., dict[str, SiteProcesses]]]:
    """`two_sites(extra="...")`: sites a (writer) and b (reviewer) of pod `span`, brokers and bridges running."""
    made: list[SiteProcesses] = []

    def make(extra: str = "", start: bool = True) -> dict[str, SiteProcesses]:
        pod_file = write_pod(tmp_path / "span", POD.format(url=nats_server.url, extra=extra))
        sites = {}
        for name in ("a", "b"):
            home = tmp_path / f"h{name}"
            site = SiteProcesses(name, pod_file, "span", home, site_env(home))
            made.append(site)
            sites[name] = site.start() if start else site
        return sites

    yield make
    for site in made:
        site.stop()
    server = nats_server.proc.pid if nats_server.proc is not None else None
    left = [pid for pid in python_children_named(str(tmp_path)) if pid != server]
    assert left == [], "a process of the test outlived it"
