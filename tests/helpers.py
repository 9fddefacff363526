"""Shared test helpers: bounded polling (tests never sleep to wait) and process handles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from podctl.broker.ports import Ports
    from podctl.broker.records import Synced
    from podctl.broker.wake import WakePolicy
    from podctl.broker.wire import Client

T = TypeVar("T")

PODCTL = [sys.executable, "-m", "podctl.orchestrator.cli.main"]
"""Run the podctl CLI with the interpreter running the tests."""


TWO_AGENTS = """\
name: {name}
agents:
  alice:
    cli: script
    role: writes code
  bob:
    cli: script
    role: reviews code
  carol:
    cli: script
    role: tests code
"""
"""A pod of three script agents (the `broker` fixture's, named `bus`)."""


class WaitTimeout(AssertionError):
    pass


MAX_SLOWDOWN = 4.0


def slowdown() -> float:
    """How many times slower than a quiet machine this one is now: `PODCTL_TEST_SLOWDOWN` (default 1),
    raised to the load average per core when that is higher (a second test run beside this one,
    other work), at most `MAX_SLOWDOWN`. Every deadline a test waits on goes through `scaled`."""
    try:
        base = float(os.environ.get("PODCTL_TEST_SLOWDOWN") or 1.0)
    except ValueError:
        base = 1.0
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 1.0
    return max(1.0, base, min(MAX_SLOWDOWN, load))


def scaled(seconds: float) -> float:
    """A deadline of `seconds` on a quiet machine, stretched for this machine's load now."""
    return seconds * slowdown()


def interruptible() -> None:
    """`preexec_fn` of a child a test interrupts with SIGINT: Ctrl-C's default, as a terminal gives
    it, also when the suite runs as a background job (POSIX shells start those with SIGINT ignored,
    and the children inherit it, so the child would never see the test's Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(
    predicate: Callable[[], T | Literal[False] | None], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy, failing after `timeout` seconds (as
    on a quiet machine: `scaled`); returns that value (never None or False, as its type says)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the last error is reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise WaitTimeout(f"timed out after {timeout}s waiting for {message or predicate}{detail}")
        time.sleep(interval)


def podctl(*args: str, check: bool = True, timeout: float = 60.0, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run `podctl ARGS` to completion and return its output."""
    proc = subprocess.run([*PODCTL, *args], capture_output=True, text=True, timeout=scaled(timeout), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podctl {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@dataclass
class BrokerProcess:
    """A real broker started with `podctl broker run POD_FILE`."""

    pod_file: Path
    pod: str
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    nofile: int | None = None
    """An open-file limit for the broker process (soft and hard, so it cannot raise it)."""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home / f"{self.pod}-broker-test.log"

    @property
    def state(self) -> Path:
        return self.home / self.pod

    @property
    def socket(self) -> Path:
        return self.state / "broker.sock"

    def token(self, agent: str) -> str:
        return (self.state / "agents" / agent / "token").read_text().strip()

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        from podctl.broker.wire import Client

        self.home.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        limit = self.nofile

        def preexec() -> None:
            if limit is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.proc = subprocess.Popen(
            [*PODCTL, "broker", "run", str(self.pod_file)], stdout=logf, stderr=subprocess.STDOUT, preexec_fn=preexec
        )
        logf.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"broker exited {self.proc.returncode}:\n{self.log.read_text()}")
            with Client(self.socket, "user", self.token("user"), timeout=1.0) as c:
                c.call("hello")
            return True

        wait_until(ready, timeout=timeout, message="the broker to answer hello")
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

    def sync(self) -> Synced:
        """What an applier does after loading the pod file: hand the broker the spec it applied."""
        from podctl.pods.load import load_pod
        from podctl.pods.transfer import to_wire

        with self.client("user") as user:
            return user.call("sync", **to_wire(load_pod(self.pod_file)))

    def client(self, agent: str, timeout: float = 5.0) -> Client:
        from podctl.broker.wire import Client

        return Client(self.socket, agent, self.token(agent), timeout=timeout)


def hook_argv(state: Path, agent: str, cli: str, native: str, *python_flags: str) -> list[str]:
    """The command a CLI's hook runs for one of its native events (as the adapter writes it)."""
    from podctl.hooks.adapter import HOOKS_DIR, get_adapter

    how = get_adapter(cli).hook_events[native]
    return [sys.executable, "-I", "-S", *python_flags, str(HOOKS_DIR / "fast.py"),
            "--state", str(state), "--agent", agent, *how.options()]


def pod_folder(pod: str, pod_file: Path) -> Path:
    """The state folder of a pod that was brought up once and is down (no process is started)."""
    from podctl.broker.paths import PodPaths

    paths = PodPaths.of(pod).ensure()
    paths.pod_file_record.write_text(f"{pod_file.resolve()}\n")
    return paths.root


def git_repo(path: Path) -> Path:
    """A git repository with one commit (README.md), made with the user's git but its own identity."""
    path.mkdir(parents=True)
    for args in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "README.md").write_text("hello\n")
    subprocess.run(["git", "add", "."], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=path, check=True)
    return path


def write_pod(folder: Path, text: str, name: str = "pod.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path



def tmux_out(*args: str) -> str:
    """Run tmux on the test's private server and return its output."""
    cmd = ["tmux", "-L", os.environ["PODCTL_TMUX_SOCKET"], *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout


def pane_text(pod: str, window: str) -> str:
    return tmux_out("capture-pane", "-p", "-J", "-S", "-500", "-t", f"={pod}:={window}")


def window_pids(pod: str) -> dict[str, int]:
    """Each window's first pane pid, by window name."""
    out: dict[str, int] = {}
    for line in tmux_out("list-panes", "-s", "-t", f"={pod}", "-F", "#{window_name} #{pane_pid}").splitlines():
        name, pid = line.split()
        out.setdefault(name, int(pid))
    return out


def status_of(pod: str) -> dict[str, Any]:
    import json

    status: dict[str, Any] = json.loads(podctl("status", pod, "--json").stdout)
    return status


def broker_call(pod: str, op: str, **args: Any) -> dict[str, Any]:
    """Ask the pod's running broker as its owner, in this process (polling loops use this rather
    than a `podctl` subprocess each time)."""
    from podctl.broker.paths import USER, PodPaths
    from podctl.broker.wire import Client

    paths = PodPaths.of(pod)
    with Client(paths.socket, USER, paths.read_token(USER), timeout=10.0) as client:
        return client.call_untyped(op, **args)


def agent_state(pod: str, agent: str) -> str:
    """The agent's busy/idle/stopped state as the broker knows it."""
    return str(next(a["state"] for a in broker_call(pod, "status")["agents"] if a["name"] == agent))


def transcript(pod: str) -> str:
    """The pod's history as `podctl tail` prints it (from the running broker, in this process)."""
    from podctl.broker.transcript import format_message

    lines: list[str] = []
    cursor = 0
    while True:
        page = broker_call(pod, "history", since=cursor, limit=1000)
        lines += [format_message(m) for m in page["messages"]]
        cursor = page["next"]
        if not page["more"]:
            return "\n".join(lines) + "\n"


def wait_for_pane(pod: str, window: str, text: str, timeout: float = 90.0) -> str:
    """Wait for `text` on a pane's screen; on timeout the failure shows the screen."""
    try:
        def screen() -> str:
            shown = pane_text(pod, window)
            return shown if text in shown else ""

        return wait_until(screen, timeout=timeout,
                          message=f"{text!r} in the {window} pane of {pod}")
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}\n--- {pod}:{window} pane ---\n{pane_text(pod, window)}") from None


class LocalBroker:
    """The broker's request handler in this process, on a real store, with no socket: op tables and
    error cases run in milliseconds. (Where the transport matters, use the `broker` fixture.)"""

    def __init__(self, pod_file: Path, *, ports: Ports | None = None, wake: WakePolicy | None = None) -> None:
        import asyncio

        from podctl.broker.paths import PodPaths
        from podctl.broker.service import Broker
        from podctl.broker.store import Store
        from podctl.pods.load import load_pod

        self.loop = asyncio.new_event_loop()
        spec = load_pod(pod_file)
        self.paths = PodPaths.of(spec.name).ensure()
        self.store = self.run(Store.open(self.paths.db))
        self.broker = Broker(spec, pod_file, self.paths, self.store, ports, wake=wake)
        self.run(self.broker.load())
        self._next = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def frame(self, agent: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        from podctl.broker import wire

        self._next += 1
        return wire.request(self._next, op, agent, self.paths.read_token(agent), args)

    def call(self, agent: str, op: str, **args: object) -> dict[str, Any]:
        from podctl.broker import wire

        return wire.unwrap(self.run(self.broker.handle(self.frame(agent, op, args))))

    def close(self) -> None:
        self.run(self.broker.rules.close())
        self.run(self.broker.close())
        self.run(self.store.close())
        self.loop.close()


def run_on_terminal(argv: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run `argv` to completion with its output on a pseudo-terminal, as a person sees it: its exit
    status and everything it wrote (line ends as `\\n`)."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env={"TERM": "xterm", **env})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=scaled(timeout))
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


@contextmanager
def holding_apply_lock(pod: str, purpose: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the pod's apply lock (as `purpose`) until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom podctl.broker.paths import PodPaths\n"
         f"from podctl.orchestrator.pod import applying\nwith applying(PodPaths.of({pod!r}), {purpose!r}):\n"
         "    print('held', flush=True)\n    sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=30)
