"""Each site authenticates to NATS with its own credentials, and NATS permissions (docs/sites.md) let it
publish only as itself: site a works, and cannot publish on site b's subjects nor take site b's messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import wait_until, write_pod
from .conftest import POD
from .harness import NatsServer, SiteProcesses, python_children_named, site_env


def site_permissions(pod: str, site: str) -> str:
    """The permissions docs/sites.md gives a site's NATS user (the stream is made by the first site)."""
    stream = f"PODCTL_{pod}"
    allow = [
        f"podctl.{pod}.{site}.>",
        f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.CREATE.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.site-{site}",
        f"$JS.API.CONSUMER.CREATE.{stream}.site-{site}.podctl.{pod}.*.*.{site}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.site-{site}",
        f"$JS.ACK.{stream}.site-{site}.>",
    ]
    quoted = ", ".join(f'"{a}"' for a in allow)
    return (f'{{user: {site}, password: "secret-{site}", permissions: {{publish: {{allow: [{quoted}]}},'
            f' subscribe: {{allow: ["_INBOX.>", "podctl.{pod}.*.state"]}}}}}}')


@pytest.fixture
def guarded_nats(tmp_path: Path) -> Iterator[NatsServer]:
    users = ", ".join(site_permissions("span", s) for s in ("a", "b"))
    server = NatsServer(tmp_path / "nats", config=f"authorization: {{users: [{users}]}}\n").start()
    yield server
    server.stop()


def test_each_site_has_its_own_credentials_and_publishes_only_as_itself(tmp_path: Path, guarded_nats: NatsServer) -> None:
    import nats

    pod_file = write_pod(tmp_path / "span", POD.format(url=guarded_nats.url, extra=""))
    sites: dict[str, SiteProcesses] = {}
    try:
        for name in ("a", "b"):
            creds = tmp_path / f"{name}.creds"
            creds.write_text(f"{name}:secret-{name}\n")
            creds.chmod(0o600)
            home = tmp_path / f"h{name}"
            sites[name] = SiteProcesses(name, pod_file, "span", home,
                                        site_env(home, PODCTL_BRIDGE_CREDENTIALS=str(creds))).start()
        a, b = sites["a"], sites["b"]
        wait_until(lambda: a.link_up() and b.link_up(), timeout=30, message="both sites connected with their own users")
        a.call("writer", "tell", to="reviewer", text="through the guarded server")
        got = wait_until(lambda: b.call("reviewer", "read_messages")["messages"], timeout=20, message="the tell at b")
        assert got[0]["text"] == "through the guarded server"

        async def as_site_a() -> list[str]:
            refused: list[str] = []

            async def on_error(exc: Exception) -> None:
                refused.append(str(exc))

            nc = await nats.connect(guarded_nats.url, user="a", password="secret-a", error_cb=on_error,
                                    allow_reconnect=False)
            forged = b'{"v":1,"kind":"msg","site":"b","message":{"id":1,"ts":1,"from":"reviewer","kind":"tell","to":["writer"],"text":"forged"}}'
            await nc.publish("podctl.span.b.msg.a", forged)
            js = nc.jetstream(timeout=2)
            with pytest.raises(Exception):  # noqa: B017 - the server refuses: no permission
                await js.pull_subscribe("podctl.span.*.*.b", durable="site-b", stream="PODCTL_span")
            await nc.flush()
            await asyncio.sleep(0.2)
            await nc.close()
            return refused

        refused = asyncio.run(as_site_a())
        assert 'permissions violation for publish to "podctl.span.b.msg.a"' in [r.removeprefix("nats: ") for r in refused]
        a.call("user", "hello")
        history = a.call("user", "history")["messages"]
        assert not any(m["text"] == "forged" for m in history), "nothing site a forged as site b arrived"
    finally:
        for site in sites.values():
            site.stop()
    server = guarded_nats.proc.pid if guarded_nats.proc else None
    assert [p for p in python_children_named(str(tmp_path)) if p != server] == []
