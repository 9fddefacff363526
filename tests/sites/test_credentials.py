"""Each site logs in to NATS with its own credentials, of each kind docs/sites.md names: an nkey seed (to a
server behind TLS with a private CA: `tls://` and `ca:` in the pod file, a path relative to it), and a
.creds file (a user JWT and its seed, decentralized auth); a tell crosses and its read receipt comes back."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ..helpers import wait_until, write_pod
from .harness import NatsServer, SiteProcesses, python_children_named, site_env

POD = """\
name: span
bridge: {{url: "{url}", ca: {ca}}}
agents:
  writer: {{cli: script, site: a}}
  reviewer: {{cli: script, site: b}}
"""


def private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA (ca.pem) and a certificate it signed for 127.0.0.1: (ca, server certificate, server key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = partial(openssl, folder)
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=podctl test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def nkey_user(folder: Path, site: str) -> tuple[Path, str]:
    """A site's nkey seed file (0600) and its public key, for the server's `users`."""
    import nkeys  # type: ignore[import-untyped]  # nkeys ships no type information

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path = folder / f"{site}.nk"
    path.write_bytes(seed + b"\n")
    path.chmod(0o600)
    return path, nkeys.from_seed(bytearray(seed)).public_key.decode()


def crosses_with_its_receipt(nats: NatsServer, pod_file: Path, tmp_path: Path, creds: dict[str, Path]) -> None:
    """Sites a and b (each logging in with its own credentials file): a tell crosses, its read receipt comes back."""
    sites = {}
    try:
        for name in ("a", "b"):
            home = tmp_path / f"h{name}"
            env = site_env(home, PODCTL_BRIDGE_CREDENTIALS=str(creds[name]))
            sites[name] = SiteProcesses(name, pod_file, "span", home, env).start()
        a, b = sites["a"], sites["b"]
        wait_until(lambda: a.link_up() and b.link_up(), timeout=20,
                   message=f"both bridges connected\n{a.logs()}\n{b.logs()}")
        sent = a.call("writer", "tell", to="reviewer", text="with my own credentials")
        got = wait_until(lambda: b.call("reviewer", "read_messages")["messages"], timeout=10, message="the tell at b")
        assert [(m["from"], m["text"]) for m in got] == [("writer", "with my own credentials")]

        def read_at_a() -> bool:
            return any(m["id"] == sent["message_id"] and m["delivery"][0]["state"] == "read"
                       for m in a.call("user", "history")["messages"])

        wait_until(read_at_a, timeout=10, message="the read receipt at a")
    finally:
        for site in sites.values():
            site.stop()
        nats.stop()
    assert python_children_named(str(tmp_path)) == [], "a process of the test outlived it"


def test_sites_reach_nats_over_tls_with_a_private_ca_and_their_own_nkeys(tmp_path: Path) -> None:
    ca, cert, key = private_ca(tmp_path / "pki")
    seeds = {site: nkey_user(tmp_path, site) for site in ("a", "b")}
    users = ", ".join(f'{{nkey: "{public}"}}' for _, public in seeds.values())
    server = NatsServer(tmp_path / "nats", config=(
        f'tls: {{cert_file: "{cert}", key_file: "{key}"}}\nauthorization: {{users: [{users}]}}\n')).start()
    pod_file = write_pod(tmp_path / "span", POD.format(url=f"tls://127.0.0.1:{server.port}", ca="ca.pem"))
    shutil.copy(ca, pod_file.parent / "ca.pem")
    crosses_with_its_receipt(server, pod_file, tmp_path, {site: path for site, (path, _) in seeds.items()})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _keypair(prefix: int) -> tuple[bytes, Any]:
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(bytearray(seed))


def _jwt(issuer: Any, subject: Any, kind: str, **nats: Any) -> str:
    """A NATS JWT (v2) of `kind` for `subject`, signed by `issuer` (as `nsc` writes them)."""
    claims: dict[str, Any] = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "name": kind,
                              "sub": subject.public_key.decode(), "nats": {**nats, "type": kind, "version": 2}}
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()).decode()
    signed = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode()) + "." + _b64(json.dumps(claims).encode())
    return signed + "." + _b64(issuer.sign(signed.encode()))


def decentralized_auth(folder: Path, sites: tuple[str, ...]) -> tuple[str, dict[str, Path]]:
    """An operator, its system account and one account with JetStream, and a .creds file per site (a user of
    that account): the server's configuration and the creds files."""
    import nkeys

    _, operator = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
    _, system = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, account = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    unlimited = {k: -1 for k in ("subs", "data", "payload", "imports", "exports", "conn", "leaf", "mem_storage",
                                 "disk_storage", "streams", "consumer")}
    accounts = {system.public_key.decode(): _jwt(operator, system, "account"),
                account.public_key.decode(): _jwt(operator, account, "account", limits={**unlimited, "wildcards": True})}
    preload = ", ".join(f'{key}: "{token}"' for key, token in accounts.items())
    config = (f'operator: "{_jwt(operator, operator, "operator")}"\nsystem_account: {system.public_key.decode()}\n'
              f"resolver: MEMORY\nresolver_preload: {{{preload}}}\n")
    creds = {}
    for site in sites:
        seed, user = _keypair(nkeys.PREFIX_BYTE_USER)
        token = _jwt(account, user, "user", subs=-1, data=-1, payload=-1)
        creds[site] = folder / f"{site}.creds"
        creds[site].write_text(f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
                               f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n")
        creds[site].chmod(0o600)
    return config, creds


def test_sites_log_in_with_their_own_creds_files(tmp_path: Path) -> None:
    config, creds = decentralized_auth(tmp_path, ("a", "b"))
    server = NatsServer(tmp_path / "nats", config=config).start()
    pod_file = write_pod(tmp_path / "span", POD.format(url=server.url, ca="null"))
    crosses_with_its_receipt(server, pod_file, tmp_path, creds)


def test_a_ca_bundle_that_is_not_there_is_said_with_its_path(tmp_path: Path) -> None:
    from podctl.orchestrator.nats_link import BridgeError, connect_options
    from podctl.pods.spec import BridgeSpec

    with pytest.raises(BridgeError, match=f"cannot use the bridge's CA bundle {tmp_path}/missing.pem"):
        connect_options(BridgeSpec(url="tls://127.0.0.1:4222", ca="missing.pem"), tmp_path)


def openssl(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
