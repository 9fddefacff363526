"""The pod file of a pod across machines: `bridge:` and each agent's `site:`, checked at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest
from podctl.pods.load import PodFileError, load_pod

from ..helpers import podctl, write_pod

BRIDGED = """\
name: review
bridge: {url: "nats://127.0.0.1:4222", credentials: ~/.config/podctl/review.creds}
agents:
  writer: {cli: script, site: laptop}
  reviewer: {cli: script, site: build}
  tester: {cli: script, site: laptop}
"""

BAD = [
    ("agent-without-site", BRIDGED.replace(", site: laptop}\n  reviewer", "}\n  reviewer"), "4:11",
     "agent writer needs `site:` (the machine it runs at)"),
    ("sites-without-bridge", BRIDGED.replace('bridge: {url: "nats://127.0.0.1:4222", credentials: ~/.config/podctl/review.creds}\n', ""),
     "4:33", "agent reviewer runs at site 'build' and others at 'laptop': a pod across sites needs `bridge:"),
    ("bad-url", BRIDGED.replace('"nats://127.0.0.1:4222"', '"http://127.0.0.1:4222"'), "2:15",
     "bridge.url: 'http://127.0.0.1:4222' is not a NATS server URL"),
    ("bridge-key-typo", BRIDGED.replace("credentials:", "credentails:"), "2:40",
     "unknown key 'credentails' in bridge; did you mean 'credentials'?"),
    ("bad-site-name", BRIDGED.replace("site: build", "site: Build.box"), "5:33", "'Build.box' is not a valid name"),
    ("bridge-without-url", BRIDGED.replace('url: "nats://127.0.0.1:4222", ', ""), "2:9", "missing required key 'url'"),
]


@pytest.mark.parametrize(("case", "text", "where", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_sites_are_reported_at_their_position(tmp_path: Path, case: str, text: str, where: str, message: str) -> None:
    path = write_pod(tmp_path / case, text)
    with pytest.raises(PodFileError) as caught:
        load_pod(path)
    found = [p for p in caught.value.problems if message in p.message]
    assert found, f"no problem saying {message!r}: {caught.value}"
    assert f"{found[0].line}:{found[0].col}" == where, str(caught.value)


def test_a_bridged_pod_knows_its_sites_and_each_machine_runs_its_own_agents(tmp_path: Path) -> None:
    spec = load_pod(write_pod(tmp_path / "review", BRIDGED))
    assert spec.bridge is not None and spec.bridge.url == "nats://127.0.0.1:4222"
    assert spec.sites() == ["build", "laptop"]
    assert list(spec.local_agents("laptop")) == ["writer", "tester"]
    assert list(spec.local_agents("build")) == ["reviewer"]
    assert spec.site_of("reviewer") == "build"


def test_without_a_bridge_nothing_changes(tmp_path: Path) -> None:
    """A site label on one machine is allowed and changes nothing: every agent runs here."""
    spec = load_pod(write_pod(tmp_path / "one", "name: one\nagents:\n  a: {cli: script, site: here}\n  b: {cli: script}\n"))
    assert spec.sites() == []
    assert list(spec.local_agents("elsewhere")) == ["a", "b"]
    assert spec.site_of("a") is None


def test_validate_prints_the_site_problems(tmp_path: Path) -> None:
    path = write_pod(tmp_path / "review", BRIDGED.replace(", site: build}", "}"))
    out = podctl("validate", str(path), check=False)
    assert out.returncode == 1
    assert f"{path}:5:13: agent reviewer needs `site:`" in out.stdout


def test_this_machines_site_is_site_else_podctl_site_else_the_one_it_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from podctl.broker.paths import PodPaths
    from podctl.orchestrator.lifecycle import choose_site
    from podctl.pods.errors import PodctlError

    spec = load_pod(write_pod(tmp_path / "review", BRIDGED))
    paths = PodPaths.of(spec.name, tmp_path / "home").ensure()
    monkeypatch.delenv("PODCTL_SITE", raising=False)
    with pytest.raises(PodctlError, match=r"runs across sites build, laptop: say which one this machine runs"):
        choose_site(spec, paths, None)
    monkeypatch.setenv("PODCTL_SITE", "build")
    assert choose_site(spec, paths, None) == "build"
    assert choose_site(spec, paths, "laptop") == "laptop", "--site wins over PODCTL_SITE"
    monkeypatch.setenv("PODCTL_SITE", "moon")
    with pytest.raises(PodctlError, match=r"has no site 'moon' \(its sites: build, laptop\)"):
        choose_site(spec, paths, None)
    monkeypatch.delenv("PODCTL_SITE")
    paths.write_site("laptop")
    assert choose_site(spec, paths, None) == "laptop", "resume keeps the site this machine ran"
    one = load_pod(write_pod(tmp_path / "one", "name: one\nagents:\n  a: {cli: script}\n"))
    with pytest.raises(PodctlError, match="has no `bridge:`"):
        choose_site(one, PodPaths.of("one", tmp_path / "home").ensure(), "laptop")
