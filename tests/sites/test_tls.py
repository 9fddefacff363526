"""A NATS server behind TLS with a private CA (`tls://` and `ca:` in the pod file, a path relative to it) and
nkey users: each site logs in with its own nkey seed, and a tell crosses with its read receipt back."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..helpers import wait_until, write_pod
from .harness import NatsServer, SiteProcesses, python_children_named, site_env

POD = """\
name: span
bridge: {{url: "tls://127.0.0.1:{port}", ca: ca.pem}}
agents:
  writer: {{cli: script, site: a}}
  reviewer: {{cli: script, site: b}}
"""


def private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA (ca.pem) and a certificate it signed for 127.0.0.1: (ca, server certificate, server key)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a test CA")
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=podctl test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def nkey_user(folder: Path, site: str) -> tuple[Path, str]:
    """A site's nkey seed file (0600) and its public key, for the server's `users`."""
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path = folder / f"{site}.nk"
    path.write_bytes(seed + b"\n")
    path.chmod(0o600)
    return path, nkeys.from_seed(bytearray(seed)).public_key.decode()


def test_sites_reach_nats_over_tls_with_a_private_ca_and_their_own_nkeys(tmp_path: Path) -> None:
    ca, cert, key = private_ca(tmp_path / "pki")
    seeds = {site: nkey_user(tmp_path, site) for site in ("a", "b")}
    users = ", ".join(f'{{nkey: "{public}"}}' for _, public in seeds.values())
    server = NatsServer(tmp_path / "nats", config=(
        f'tls: {{cert_file: "{cert}", key_file: "{key}"}}\nauthorization: {{users: [{users}]}}\n')).start()
    pod_file = write_pod(tmp_path / "span", POD.format(port=server.port))
    shutil.copy(ca, pod_file.parent / "ca.pem")
    sites = {}
    try:
        for name in ("a", "b"):
            home = tmp_path / f"h{name}"
            env = site_env(home, PODCTL_BRIDGE_CREDENTIALS=str(seeds[name][0]))
            sites[name] = SiteProcesses(name, pod_file, "span", home, env).start()
        a, b = sites["a"], sites["b"]
        wait_until(lambda: a.link_up() and b.link_up(), timeout=20,
                   message=f"both bridges connected over TLS\n{a.logs()}\n{b.logs()}")
        sent = a.call("writer", "tell", to="reviewer", text="over TLS")
        got = wait_until(lambda: b.call("reviewer", "read_messages")["messages"], timeout=10, message="the tell at b")
        assert [(m["from"], m["text"]) for m in got] == [("writer", "over TLS")]

        def read_at_a() -> bool:
            return any(m["id"] == sent["message_id"] and m["delivery"][0]["state"] == "read"
                       for m in a.call("user", "history")["messages"])

        wait_until(read_at_a, timeout=10, message="the read receipt at a")
    finally:
        for site in sites.values():
            site.stop()
        server.stop()
    assert python_children_named(str(tmp_path)) == [], "a process of the test outlived it"


def test_a_ca_bundle_that_is_not_there_is_said_with_its_path(tmp_path: Path) -> None:
    from podctl.orchestrator.bridge import BridgeError, connect_options
    from podctl.pods.spec import BridgeSpec

    with pytest.raises(BridgeError, match=f"cannot use the bridge's CA bundle {tmp_path}/missing.pem"):
        connect_options(BridgeSpec(url="tls://127.0.0.1:4222", ca="missing.pem"), tmp_path)
