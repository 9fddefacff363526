"""Nothing acknowledged is lost: kill -9 the broker in the middle of a burst, restart it, count."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from ..helpers import BrokerProcess, scaled, wait_until, write_pod

SENDER = textwrap.dedent(
    """
    import sys, time
    from podctl.broker import wire
    sock, agent, token, count, acked_path, patience = sys.argv[1:7]
    deadline = time.monotonic() + float(patience)
    client = wire.Client(sock, agent, token, timeout=5)
    with open(acked_path, "w") as acked:
        for n in range(int(count)):
            cid = f"{agent}-{n}"
            while True:
                try:
                    client.call("tell", to="sink", text=f"message {n} from {agent}", client_msg_id=cid)
                    break
                except wire.BrokerUnavailable:
                    if time.monotonic() > deadline:
                        sys.exit("broker never came back")
                    client.close()
                    time.sleep(0.05)
            acked.write(cid + "\\n")
            acked.flush()
    """
)

POD = """\
name: durable
agents:
  sink: {cli: script}
  s1: {cli: script}
  s2: {cli: script}
  s3: {cli: script}
  s4: {cli: script}
"""


def test_kill9_during_burst_loses_nothing_acknowledged(tmp_path: Path, podctl_home: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    broker = start_broker(write_pod(tmp_path / "durable", POD))
    senders = {}
    for name in ("s1", "s2", "s3", "s4"):
        acked = tmp_path / f"{name}.acked"
        acked.touch()
        proc = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(broker.socket), name, broker.token(name), "250", str(acked), str(scaled(120))]
        )
        senders[name] = (proc, acked)

    def acked_count() -> int:
        return sum(len(path.read_text().splitlines()) for _, path in senders.values())

    try:
        wait_until(lambda: acked_count() >= 300, timeout=60, message="300 acknowledged tells")
        broker.kill9()
        acked_at_kill = acked_count()
        assert acked_at_kill < 1000, "the kill must land in the middle of the burst"
        broker.start()
        for proc, _ in senders.values():
            assert proc.wait(timeout=scaled(120)) == 0
    finally:
        for proc, _ in senders.values():
            if proc.poll() is None:
                proc.kill()

    db = sqlite3.connect(podctl_home / "durable" / "pod.db")
    rows = db.execute("SELECT sender, client_msg_id, count(*) FROM messages GROUP BY sender, client_msg_id").fetchall()
    stored = {cid: n for _, cid, n in rows}
    for _, acked in senders.values():
        for cid in acked.read_text().splitlines():
            assert stored.get(cid) == 1, f"acknowledged message {cid} stored {stored.get(cid, 0)} times"
    assert len(stored) == 1000 and set(stored.values()) == {1}
    deliveries = db.execute("SELECT count(*) FROM deliveries WHERE recipient='sink'").fetchone()[0]
    assert deliveries == 1000
