"""What people see of a pod across machines: the graph groups agents by site; the live view shows an agent
of another site with its site and the age of its site's last report; the status table has a SITE column."""

from __future__ import annotations

from pathlib import Path

from podctl.orchestrator.cli.render import agent_row, site_lines
from podctl.orchestrator.ui.model import PodView
from podctl.orchestrator.ui.text import agent_cells
from podctl.pods.graph import render
from podctl.pods.load import load_pod

from ..helpers import write_pod

POD = """\
name: review
bridge: {url: "nats://127.0.0.1:4222"}
agents:
  writer: {cli: script, site: laptop, role: writes}
  reviewer: {cli: script, site: build}
routes:
  - {name: review, to: [reviewer]}
"""


def test_the_graph_groups_agents_by_site(tmp_path: Path) -> None:
    spec = load_pod(write_pod(tmp_path / "review", POD))
    text = render(spec, "text")
    assert "writer    @laptop  script   writes" in text
    assert "sites: build, laptop, bridged over nats://127.0.0.1:4222" in text
    mermaid = render(spec, "mermaid")
    assert 'subgraph site_laptop["site laptop"]\n    a_writer[' in mermaid
    assert 'subgraph "cluster_build" { label="site build";' in render(spec, "dot")
    plain = render(load_pod(write_pod(tmp_path / "one", "name: one\nagents:\n  a: {cli: script}\n")), "mermaid")
    assert "subgraph" not in plain, "a pod on one machine draws as before"


def test_the_live_view_shows_where_a_remote_agent_runs_and_how_old_its_report_is() -> None:
    view = PodView("review")
    view.set_status({"agents": [
        {"name": "writer", "cli": "script", "state": "idle", "site": "laptop"},
        {"name": "reviewer", "cli": "script", "state": "busy", "state_ts": 990.0, "site": "build", "remote": True,
         "reported_at": 995.0},
    ]})
    cells = agent_cells(view.agents["reviewer"], now=1000.0)
    assert cells[1].plain == "busy 10s @build, reported 5s ago"
    assert view.apply({"event": "site", "data": {"site": "build", "reported_at": 999.0, "ts": 999.0}}).agents
    assert agent_cells(view.agents["reviewer"], now=1000.0)[1].plain == "busy 10s @build, reported 1s ago"
    assert agent_cells(view.agents["writer"], now=1000.0)[1].plain == "idle", "this site's agents as before"


def test_status_says_each_sites_report_and_the_link() -> None:
    row = agent_row({"name": "reviewer", "state": "idle", "state_ts": 900.0, "site": "build", "remote": True,
                     "reported_at": 990.0}, now=1000.0)
    assert row["site"] == "build" and row["state"] == "idle for 1m (reported 10s ago)"
    lines = site_lines({"here": "laptop", "link": {"up": True, "since": 940.0, "detail": "connected to nats:4222"},
                        "sites": [{"name": "build", "here": False, "reported_at": 997.0, "refused": 2},
                                  {"name": "laptop", "here": True}]}, now=1000.0)
    assert lines == ["site laptop: bridge up for 1m (connected to nats:4222)", "site build: reported 3s ago, 2 refused"]
