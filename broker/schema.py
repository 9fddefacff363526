"""The pod store's schema: the migrations that build pod.db, in order (`PRAGMA user_version` counts them).

A migration is never edited once released; a change of schema is a new one at the end.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE agents(
        name TEXT PRIMARY KEY,
        cli TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'stopped',
        state_ts REAL NOT NULL DEFAULT 0,
        removed INTEGER NOT NULL DEFAULT 0,
        read_cursor INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL,
        recipients TEXT NOT NULL,
        target TEXT,
        text TEXT NOT NULL,
        ask_id INTEGER,
        urgent INTEGER NOT NULL DEFAULT 0,
        followup INTEGER NOT NULL DEFAULT 0,
        client_msg_id TEXT
    );
    CREATE UNIQUE INDEX messages_client_id ON messages(sender, client_msg_id)
        WHERE client_msg_id IS NOT NULL;
    CREATE INDEX messages_ts ON messages(ts);
    CREATE TABLE deliveries(
        recipient TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        queued_at REAL NOT NULL,
        injected_at REAL,
        read_at REAL,
        claim TEXT,
        claimed_at REAL,
        notice_at REAL,
        PRIMARY KEY(recipient, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_message ON deliveries(message_id);
    CREATE TABLE asks(
        id INTEGER PRIMARY KEY,
        asker TEXT NOT NULL,
        mode TEXT NOT NULL DEFAULT 'all',
        route TEXT,
        deadline REAL
    );
    CREATE TABLE ask_targets(
        ask_id INTEGER NOT NULL,
        agent TEXT NOT NULL,
        reply_id INTEGER,
        replied_at REAL,
        PRIMARY KEY(ask_id, agent)
    ) WITHOUT ROWID;
    CREATE TABLE state_changes(
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        state TEXT NOT NULL,
        ts REAL NOT NULL
    );
    CREATE TABLE wakes(
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        ts REAL NOT NULL,
        result TEXT NOT NULL
    );
    """,
    # 2: a message too large for a hook is shown to the model as a pointer once (pointed_at); read
    # cursors live in memory (the column was never read).
    """
    ALTER TABLE deliveries ADD COLUMN pointed_at REAL;
    ALTER TABLE agents DROP COLUMN read_cursor;
    """,
    # 3: what produced a message, when it was not its sender's own doing ("rule:<name>", "handoff").
    """
    ALTER TABLE messages ADD COLUMN origin TEXT;
    """,
    # 4: token usage per model request of each agent (read from its CLI's session files, once per
    # key), how far each file was read, the pricing and limits last applied (for a pod that is
    # down), and the budget notices already given.
    """
    CREATE TABLE usage(
        agent TEXT NOT NULL,
        key TEXT NOT NULL,
        model TEXT NOT NULL,
        ts REAL NOT NULL,
        input INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        output INTEGER NOT NULL,
        reasoning INTEGER NOT NULL,
        PRIMARY KEY(agent, key)
    ) WITHOUT ROWID;
    CREATE INDEX usage_ts ON usage(ts);
    CREATE TABLE usage_files(
        agent TEXT NOT NULL,
        path TEXT NOT NULL,
        inode INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY(agent, path)
    ) WITHOUT ROWID;
    CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE budget_notices(key TEXT PRIMARY KEY, ts REAL NOT NULL);
    """,
    # 5: what outlives the broker's process: each rule's rounds, last firing, open ask and the git
    # trees its diffs start from; the agent a rule's ask was for (its late replies and follow-ups go
    # to it); when an ask was looked at after its deadline (its asker told if answers were missing;
    # asks already past it are not told again); the role each agent's model was last told.
    """
    CREATE TABLE rule_state(
        name TEXT PRIMARY KEY,
        rounds INTEGER NOT NULL DEFAULT 0,
        last_fired REAL NOT NULL DEFAULT 0,
        open_ask INTEGER
    );
    CREATE TABLE rule_baselines(
        rule TEXT NOT NULL,
        agent TEXT NOT NULL,
        workdir TEXT NOT NULL,
        tree TEXT,
        PRIMARY KEY(rule, agent, workdir)
    ) WITHOUT ROWID;
    ALTER TABLE asks ADD COLUMN behalf TEXT;
    ALTER TABLE asks ADD COLUMN expiry_checked REAL;
    UPDATE asks SET expiry_checked = deadline
        WHERE deadline IS NOT NULL AND deadline < (julianday('now') - 2440587.5) * 86400.0;
    ALTER TABLE agents ADD COLUMN told_role TEXT;
    """,
    # 6: attention (broker/attention.py): why an agent is blocked or failed, as JSON, so a restarted
    # broker still shows it; and the requests answered `always` (never asked again for the same tool
    # and detail).
    """
    CREATE TABLE attention(agent TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE always_allowed(
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        detail TEXT NOT NULL,
        by TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY(agent, tool, detail)
    ) WITHOUT ROWID;
    """,
    # 7: a pod across machines (broker/sites.py, docs/sites.md): messages for other sites wait in an outbox
    # (written in the message's own transaction) until the bridge's publish is acknowledged; messages from
    # other sites are stored once per (origin site, origin id); what a recipient here did with them (queued,
    # injected, read) is a receipt owed to their site, kept by triggers in the transaction that changed it.
    """
    CREATE TABLE site_outbox(
        message_id INTEGER NOT NULL,
        site TEXT NOT NULL,
        sent_at REAL,
        arrived_at REAL,
        error TEXT,
        PRIMARY KEY(message_id, site)
    ) WITHOUT ROWID;
    CREATE INDEX site_outbox_unsent ON site_outbox(message_id) WHERE sent_at IS NULL;
    CREATE TABLE site_imports(
        origin_site TEXT NOT NULL,
        origin_id INTEGER NOT NULL,
        local_id INTEGER NOT NULL,
        PRIMARY KEY(origin_site, origin_id)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX site_imports_local ON site_imports(local_id);
    CREATE TABLE site_receipts(
        message_id INTEGER NOT NULL,
        recipient TEXT NOT NULL,
        rank INTEGER NOT NULL,
        sent_rank INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(message_id, recipient)
    ) WITHOUT ROWID;
    CREATE INDEX site_receipts_due ON site_receipts(message_id) WHERE rank > sent_rank;
    CREATE TRIGGER site_receipt_owed AFTER UPDATE OF injected_at, read_at ON deliveries
        WHEN EXISTS (SELECT 1 FROM site_receipts WHERE message_id = NEW.message_id AND recipient = NEW.recipient)
    BEGIN
        UPDATE site_receipts SET rank = max(rank, CASE WHEN NEW.read_at IS NOT NULL THEN 3 ELSE 2 END)
            WHERE message_id = NEW.message_id AND recipient = NEW.recipient;
    END;
    CREATE TRIGGER site_message_pruned AFTER DELETE ON messages
    BEGIN
        DELETE FROM site_outbox WHERE message_id = OLD.id;
        DELETE FROM site_receipts WHERE message_id = OLD.id;
    END;
    """,
]
