"""examples/sites as its README says to try it: `podctl bridge dev` and two state folders standing for the
laptop and the build server, each running `podctl up --site`; the writer's ask to the review route is
answered by both agents of the other site."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from ..helpers import PODCTL, scaled, wait_until
from .harness import free_port, python_children_named, site_env

REPO = Path(__file__).resolve().parents[2]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODCTL, *args], env=env, capture_output=True, text=True, timeout=scaled(90), check=False)


def replies_at(env: dict[str, str]) -> dict[str, str]:
    out = run(env, "tail", "sites", "--json", "--last", "1000").stdout
    messages = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"kind"' in line]
    return {m["from"]: m["text"] for m in messages if m["kind"] == "reply"}


def test_the_sites_example_runs_across_two_sites_over_podctl_bridge_dev(tmp_path: Path) -> None:
    example = tmp_path / "sites"
    shutil.copytree(REPO / "examples" / "sites", example)
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    dev_env = site_env(tmp_path / "dev")
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115 - handed to the child
    dev = subprocess.Popen([*PODCTL, "bridge", "dev", "--port", str(port), "--store", str(tmp_path / "nats")],
                           env=dev_env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    envs = {site: site_env(tmp_path / site, PODCTL_TMUX_SOCKET=f"podctl-test-{uuid.uuid4().hex[:8]}",
                           PODCTL_BRIDGE_URL=url) for site in ("laptop", "build")}
    try:
        def listening() -> bool:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        wait_until(listening, timeout=20, message="podctl bridge dev to listen")
        assert f"NATS with JetStream on {url}" in (tmp_path / "dev.log").read_text()
        for site in ("build", "laptop"):
            out = run(envs[site], "up", str(example / "pod.yaml"), "--site", site, "--no-attach")
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"started the bridge of site {site} to {url}" in out.stdout, "PODCTL_BRIDGE_URL over the file's"
        replies = wait_until(lambda: (r := replies_at(envs["laptop"])) and len(r) == 2 and r, timeout=60,
                             message="both answers of the build server at the laptop")
        assert replies["reviewer"].startswith("LGTM from reviewer on the build server: Please review")
        assert replies["tester"].startswith("tests pass on the build server (tester)")
        assert (example / "workspace" / "app.py").read_text() == "print('hello from the laptop')\n"
        status = json.loads(run(envs["build"], "status", "sites", "--json").stdout)
        assert {a["name"]: a.get("site") for a in status["agents"]} == {
            "writer": "laptop", "reviewer": "build", "tester": "build"}
        assert status["sites"]["link"]["up"] is True, "the bridge reached podctl bridge dev (PODCTL_BRIDGE_URL)"
    finally:
        for env in envs.values():
            run(env, "down", "sites")
            subprocess.run(["tmux", "-L", env["PODCTL_TMUX_SOCKET"], "kill-server"], capture_output=True, check=False)
        dev.terminate()
        dev.wait(timeout=scaled(15))
    assert python_children_named(str(tmp_path)) == [], "a process outlived the example"
