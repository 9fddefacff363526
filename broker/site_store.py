"""The sites' store hook: a message's outbox rows and an import's record, written in the message's own
transaction (the group commit's, in the store's BatchWriter thread), so a crash anywhere only sends
a message again and never twice stores one."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .paths import USER

if TYPE_CHECKING:
    from .commits import NewMessage
    from .sites import Sites


class SiteStoreHook:
    """A `BatchHook` (commits.py) for one broker's sites."""

    def __init__(self, sites: Sites) -> None:
        self.sites = sites

    def before(self, conn: sqlite3.Connection, batch: list[NewMessage]) -> list[NewMessage]:
        """Messages from other sites that were stored before are duplicates (the stored id is kept).
        Run in the store's BatchWriter thread, inside the batch's transaction."""
        keep: list[NewMessage] = []
        seen: dict[tuple[str, int], NewMessage] = {}
        for msg in batch:
            if msg.source is None:
                keep.append(msg)
                continue
            first = seen.get(msg.source)
            if first is None:
                row = conn.execute(
                    "SELECT local_id FROM site_imports WHERE origin_site=? AND origin_id=?", msg.source
                ).fetchone()
                if row is None:
                    seen[msg.source] = msg
                    keep.append(msg)
                    continue
                msg.id = int(row[0])
            else:
                msg.id = first.id
            msg.duplicate = True
        return keep

    def after(self, conn: sqlite3.Connection, fresh: list[NewMessage]) -> None:
        local = self.sites.local_names() | {USER}
        outbox: list[tuple[int, str]] = []
        for msg in fresh:
            assert msg.id is not None
            if msg.source is not None:
                self._imported(conn, msg, local)
            else:
                outbox += [(msg.id, site) for site in sorted(self._destinations(conn, msg))]
        if outbox:
            conn.executemany("INSERT OR IGNORE INTO site_outbox(message_id, site) VALUES (?,?)", outbox)

    @staticmethod
    def _imported(conn: sqlite3.Connection, msg: NewMessage, local: set[str]) -> None:
        """Record where it came from; only recipients here have deliveries (and owe receipts); giving its
        sender a non-delivery notice, and its ask's expiry, are its own site's business."""
        assert msg.id is not None and msg.source is not None
        conn.execute("INSERT INTO site_imports(origin_site, origin_id, local_id) VALUES (?,?,?)", (*msg.source, msg.id))
        away = [r for r in msg.recipients if r not in local]
        if away:
            marks = ",".join("?" * len(away))
            conn.execute(f"DELETE FROM deliveries WHERE message_id=? AND recipient IN ({marks})", (msg.id, *away))
        conn.execute("UPDATE deliveries SET notice_at=queued_at WHERE message_id=?", (msg.id,))
        here = [r for r in dict.fromkeys(msg.recipients) if r in local and r != USER]
        if here:
            conn.executemany(
                "INSERT OR IGNORE INTO site_receipts(message_id, recipient, rank) VALUES (?,?,1)", [(msg.id, r) for r in here]
            )
        if msg.kind == "ask":
            conn.execute("UPDATE asks SET expiry_checked=deadline WHERE id=? AND deadline IS NOT NULL", (msg.id,))

    def _destinations(self, conn: sqlite3.Connection, msg: NewMessage) -> set[str]:
        """The other sites a message made here goes to: its recipients' and, for a reply, its ask's (where
        it was asked, and where its other targets are: a mode `first` ask is settled for them too)."""
        sites = {s for r in msg.recipients if (s := self.sites.site_of(r)) is not None}
        if msg.kind == "reply" and msg.ask_id is not None:
            row = conn.execute("SELECT origin_site FROM site_imports WHERE local_id=?", (msg.ask_id,)).fetchone()
            if row is not None:
                sites.add(str(row[0]))
            rows = conn.execute("SELECT agent FROM ask_targets WHERE ask_id=?", (msg.ask_id,)).fetchall()
            sites |= {s for (agent,) in rows if (s := self.sites.site_of(agent)) is not None}
        sites.discard(self.sites.here)
        return {s for s in sites if s in self.sites.spec.sites()}
