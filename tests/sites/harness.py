"""Real processes for a pod across machines on one machine: a nats-server with JetStream on 127.0.0.1 (a
free port, its store in the test's folder) and, per site, its own PODCTL_HOME with a broker and a bridge
(`podctl broker run --site`, `podctl bridge run`). Every process is stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podctl.broker.paths import BRIDGE, USER
from podctl.broker.wire import BrokerError, BrokerUnavailable, Client

from ..helpers import PODCTL, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NatsServer:
    """A real `nats-server -js` (the podctl[bridge] extra's binary); `kill9` and `start` again keep its store."""

    store: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    config: str | None = None
    """A nats-server configuration (its `listen` and `jetstream` are added); None: `-js` with no auth."""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        from podctl.orchestrator.nats_link import nats_server_argv

        self.store.mkdir(parents=True, exist_ok=True)
        argv = nats_server_argv(self.port, self.store)
        if self.config is not None:
            conf = self.store / "nats.conf"
            conf.write_text(f'listen: "127.0.0.1:{self.port}"\njetstream: {{store_dir: "{self.store}"}}\n{self.config}')
            argv = [argv[0], "-c", str(conf)]
        log = open(self.store / "nats.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"nats-server exited {self.proc.returncode}: {(self.store / 'nats.log').read_text()}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True

        wait_until(listening, timeout=20, message="nats-server to listen")
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class SiteProcesses:
    """One site of a pod: its PODCTL_HOME, broker and bridge, as separate processes."""

    name: str
    pod_file: Path
    pod: str
    home: Path
    env: dict[str, str]
    broker: subprocess.Popen[bytes] | None = None
    bridge: subprocess.Popen[bytes] | None = None

    @property
    def state(self) -> Path:
        return self.home / self.pod

    @property
    def socket(self) -> Path:
        return self.state / "broker.sock"

    def token(self, agent: str) -> str:
        path = self.state / ("bridge.token" if agent == BRIDGE else f"agents/{agent}/token")
        return path.read_text().strip()

    def client(self, agent: str = USER, timeout: float = 10.0) -> Client:
        return Client(self.socket, agent, self.token(agent), timeout=timeout)

    def call(self, agent: str, op: str, **args: Any) -> dict[str, Any]:
        with self.client(agent) as client:
            return client.call_untyped(op, **args)

    def _spawn(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        self.home.mkdir(parents=True, exist_ok=True)
        out = open(self.home / log, "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen([*PODCTL, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()

    def start_broker(self) -> None:
        self.broker = self._spawn("broker", "run", str(self.pod_file), "--site", self.name, log="broker.log")

        def ready() -> bool:
            assert self.broker is not None
            if self.broker.poll() is not None:
                raise AssertionError(f"broker of site {self.name} exited: {(self.home / 'broker.log').read_text()}")
            self.call(USER, "hello")
            return True

        wait_until(ready, timeout=20, message=f"the broker of site {self.name}")

    def start_bridge(self) -> None:
        self.bridge = self._spawn("bridge", "run", str(self.pod_file), log="bridge.log")

    def start(self) -> SiteProcesses:
        self.start_broker()
        self.start_bridge()
        return self

    def link_up(self) -> bool:
        try:
            return bool(self.call(USER, "status")["sites"]["link"]["up"])
        except (BrokerError, BrokerUnavailable, OSError):
            return False

    def kill9(self, which: str) -> None:
        proc = self.broker if which == "broker" else self.bridge
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in (self.bridge, self.broker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.home.glob("*.log")))


def site_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PODCTL_HOME": str(home), "PODCTL_LOG_LEVEL": "INFO", **extra}
    env.pop("PODCTL_SITE", None)
    return env


def pids_alive(*procs: subprocess.Popen[bytes] | None) -> list[int]:
    return [p.pid for p in procs if p is not None and p.poll() is None]


def python_children_named(needle: str) -> list[int]:
    """Processes whose command line holds `needle` (a test's own temp folder): none may outlive a test."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    out.append(int(entry.name))
    return out


__all__ = ["NatsServer", "SiteProcesses", "free_port", "pids_alive", "python_children_named", "site_env", "sys"]
