"""The bridge's operations on its broker, and what the broker says of a pod across machines (a part of
`Broker`, kept apart from messaging; the work is broker/sites.py's).

Only the bridge's identity (`paths.BRIDGE`, its token in `bridge.token`) may call these, and it may call
nothing else: it carries messages between sites, it does not speak for anyone.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from . import wire
from .args import MAX_NAME, Millis
from .envelopes import PULL_LIMIT
from .optable import OpError, op
from .paths import BRIDGE
from .records import BridgeDue, BridgeLink, BridgeMarked, BridgeReceived, SiteFields
from .sites import Sites, SitesHost

if TYPE_CHECKING:
    from podctl.pods.spec import PodSpec

    from .members import Member
    from .paths import PodPaths
    from .usage_store import UsageStore

log = logging.getLogger("podctl.broker.sites")

MAX_PULL_WAIT_MS = 60_000
MAX_BATCH = 1000

SiteName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=MAX_NAME)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Rank = Annotated[int, Field(ge=1, le=3)]
Reason = Annotated[str, Field(max_length=1000)]
Batch = Annotated[list[Any], Field(max_length=MAX_BATCH)]


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SentMessage(_Item):
    id: Id
    site: SiteName


class SentReceipt(_Item):
    id: Id
    to: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    rank: Rank


class Failed(_Item):
    id: Id
    site: SiteName
    why: Reason


class SiteHost(SitesHost, Protocol):
    """What the sites part needs of the broker, and nothing more: it is the host of the `Sites`
    this part makes (which carry messages between the sites), and issues the bridge's token."""

    paths: PodPaths
    usage: UsageStore
    site: str | None
    tokens: dict[str, str]


class SiteOps:
    def __init__(self, host: SiteHost) -> None:
        self.host = host
        self.sites: Sites | None = None

    def _sites(self) -> Sites:
        if self.sites is None:
            raise_not_bridged(self.host.spec.name)
        assert self.sites is not None
        return self.sites

    def configure(self, spec: PodSpec) -> None:
        """A pod with a bridge, on a machine that runs one of its sites, has sites (and a bridge identity);
        without a bridge nothing changes. Its store writes the outbox and imports in messages' transactions."""
        wanted = spec.bridge is not None and self.host.site is not None and self.host.site in spec.sites()
        if spec.bridge is not None and not wanted:
            log.warning("pod %s has a bridge but this machine runs none of its sites (site %r): it runs every agent",
                        spec.name, self.host.site)
        if wanted and self.sites is None:
            assert self.host.site is not None
            self.sites = Sites(self.host, self.host.site)
            self.host.store.hooks.append(self.sites.store_hook)
            self.host.tokens[BRIDGE] = self.host.paths.issue_token(BRIDGE)
        elif not wanted and self.sites is not None:
            self.host.store.hooks.remove(self.sites.store_hook)
            self.sites = None
            self.host.tokens.pop(BRIDGE, None)

    def site_fields(self, member: Member) -> SiteFields:
        return self.sites.member_fields(member) if self.sites is not None else {}

    def site_of(self, name: str) -> SiteFields:
        member = self.host.members.get(name)
        if self.sites is None or member is None or member.site is None:
            return {}
        return {"site": member.site}

    def gathered_elsewhere(self, ask: dict[str, Any]) -> bool:
        """A rule's ask made at another site (rules act where the agent they act for runs), still open:
        that site gathers its answers, so a reply here goes to nobody but that site."""
        behalf = self.host.members.get(ask.get("behalf") or "")
        return (ask["asker"] == wire.SYSTEM_SENDER and behalf is not None and behalf.remote
                and (ask["deadline"] is None or time.time() < ask["deadline"]))

    async def local_usage(self) -> list[tuple[str, str, list[int]]]:
        return await self.host.usage.totals()

    def remote_usage(self) -> list[tuple[str, str, list[int]]]:
        return self.sites.usage_totals() if self.sites is not None else []

    # -- the bridge's operations --------------------------------------------------------------------

    @op("bridge")
    async def op_bridge_pull(
        self, agent: str, timeout_ms: Millis = 10_000, limit: Id = PULL_LIMIT, report: bool = False
    ) -> BridgeDue:
        sites = self._sites()
        if report:
            sites.state_due = True
        return await sites.pull(min(int(limit), PULL_LIMIT), min(float(timeout_ms), MAX_PULL_WAIT_MS) / 1000.0)

    @op("bridge")
    async def op_bridge_sent(
        self, agent: str, messages: Annotated[list[SentMessage], Field(max_length=MAX_BATCH)] = [],  # noqa: B006
        receipts: Annotated[list[SentReceipt], Field(max_length=MAX_BATCH)] = [],  # noqa: B006
        failed: Annotated[list[Failed], Field(max_length=MAX_BATCH)] = [],  # noqa: B006
    ) -> BridgeMarked:
        marked = await self._sites().sent(
            [(m.id, m.site) for m in messages], [(r.id, r.to, r.rank) for r in receipts],
            [(f.id, f.site, f.why) for f in failed],
        )
        return {"marked": marked}

    @op("bridge")
    async def op_bridge_receive(
        self, agent: str, site: SiteName, envelopes: Batch,
        attempts: Annotated[list[Annotated[int, Field(ge=0, le=2**31)]], Field(max_length=MAX_BATCH)] = [],  # noqa: B006
    ) -> BridgeReceived:
        return {"results": await self._sites().receive(site, envelopes, list(attempts))}

    @op("bridge")
    async def op_bridge_link(self, agent: str, up: bool, detail: Reason = "") -> BridgeLink:
        sites = self._sites()
        sites.set_link(up, detail)
        return {"link": sites.link, "site": sites.here, "pod": self.host.spec.name}


def raise_not_bridged(pod: str) -> None:
    raise OpError(wire.FORBIDDEN, f"pod {pod} has no bridge on this machine (no `bridge:`, or `up` without --site)")
