"""Two sites of one pod in this process: two brokers on their own state folders and stores, and a carrier
that moves what one hands its bridge (`bridge_pull`) to the other (`bridge_receive`), as the bridge does
over JetStream. The broker's side of sites is tested here in milliseconds; tests/sites/test_bridge.py runs
the real bridge processes over a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from podctl.broker import wire
from podctl.broker.paths import BRIDGE, PodPaths
from podctl.broker.service import Broker
from podctl.broker.store import Store
from podctl.pods.load import load_pod

POD = """\
name: review
bridge: {{url: "nats://127.0.0.1:4222"}}
agents:
  writer: {{cli: script, site: a, role: writes}}
  tester: {{cli: script, site: a}}
  reviewer: {{cli: script, site: b, role: reviews}}
  checker: {{cli: script, site: c}}
{extra}"""


class Site:
    def __init__(self, loop: asyncio.AbstractEventLoop, pod_file: Path, root: Path, site: str) -> None:
        self.loop = loop
        self.name = site
        spec = load_pod(pod_file, state_root=root)
        self.paths = PodPaths.of(spec.name, root).ensure()
        self.paths.write_site(site)
        self.store = self.run(Store.open(self.paths.db))
        self.broker = Broker(spec, pod_file, self.paths, self.store, site=site)
        self.run(self.broker.load())
        self._next = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def frame(self, agent: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        return wire.request(self._next, op, agent, self.paths.read_token(agent), args)

    def call(self, agent: str, op: str, **args: Any) -> dict[str, Any]:
        return wire.unwrap(self.run(self.broker.handle(self.frame(agent, op, args))))

    def answer(self, agent: str, op: str, **args: Any) -> dict[str, Any]:
        """The raw response frame (for refusals)."""
        answer: dict[str, Any] = self.run(self.broker.handle(self.frame(agent, op, args)))
        return answer

    def pull(self, timeout_ms: int = 0) -> dict[str, Any]:
        return self.call(BRIDGE, "bridge_pull", timeout_ms=timeout_ms)

    def close(self) -> None:
        self.run(self.broker.rules.close())
        self.run(self.broker.close())
        self.run(self.store.close())


class Sites:
    """Sites a, b and c of pod `review`; `carry()` moves everything due until nothing is."""

    def __init__(self, tmp: Path, extra: str = "") -> None:
        self.loop = asyncio.new_event_loop()
        folder = tmp / "review"
        folder.mkdir(parents=True, exist_ok=True)
        self.pod_file = folder / "pod.yaml"
        self.pod_file.write_text(POD.format(extra=extra))
        self.sites = {name: Site(self.loop, self.pod_file, tmp / f"home-{name}", name) for name in ("a", "b", "c")}
        self.lost: list[dict[str, Any]] = []

    def __getitem__(self, name: str) -> Site:
        return self.sites[name]

    def carry(self, *, mark_sent: bool = True, rounds: int = 20) -> list[dict[str, Any]]:
        """Deliver every due item to its site (the state reports to every other site); returns the results."""
        results: list[dict[str, Any]] = []
        for _ in range(rounds):
            moved = False
            for name, site in self.sites.items():
                due = site.pull()
                for item in [*due["messages"], *due["receipts"]]:
                    moved = True
                    results += self.deliver(name, item["site"], item["envelope"])
                if due["state"] is not None:
                    for other in self.sites:
                        if other != name:
                            self.deliver(name, other, due["state"])
                if mark_sent and (due["messages"] or due["receipts"]):
                    site.call(BRIDGE, "bridge_sent", messages=[{"id": i["id"], "site": i["site"]} for i in due["messages"]],
                              receipts=[{"id": i["id"], "to": i["to"], "rank": i["rank"]} for i in due["receipts"]])
            if not moved:
                return results
        return results

    def deliver(self, origin: str, to: str, envelope: dict[str, Any], attempts: int = 1) -> list[dict[str, Any]]:
        got = self.sites[to].call(BRIDGE, "bridge_receive", site=origin, envelopes=[envelope], attempts=[attempts])
        for result in got["results"]:
            if result["result"] == "later":
                self.lost.append(envelope)
        return list(got["results"])

    def close(self) -> None:
        for site in self.sites.values():
            site.close()
        self.loop.close()
