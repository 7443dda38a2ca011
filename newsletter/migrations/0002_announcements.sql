-- 0002: announcements of new articles, the delivery ledger, and the announcer's run lock.

CREATE TABLE announcements (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('article', 'digest')),
    key             TEXT NOT NULL UNIQUE,               -- the guid, or 'digest:' + hash of guids
    subject         TEXT NOT NULL,
    items           TEXT NOT NULL,                      -- JSON: the feed items as planned
    created_at      TEXT NOT NULL,                      -- planned, with its deliveries
    finished_at     TEXT                                -- no delivery pending any more
);

CREATE TABLE feed_items (
    id              INTEGER PRIMARY KEY,
    guid            TEXT NOT NULL UNIQUE,               -- an item's identity, never its URL
    link            TEXT NOT NULL,
    link_key        TEXT NOT NULL,                      -- link without scheme/trailing slash
    title           TEXT NOT NULL,
    published_at    TEXT,
    seen_at         TEXT NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('announced', 'recorded')),
    reason          TEXT,                               -- why recorded without an email
    announcement_id INTEGER REFERENCES announcements (id)
);
CREATE INDEX feed_items_link ON feed_items (link_key);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    announcement_id INTEGER NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT,
    UNIQUE (announcement_id, subscriber_id)
);
CREATE INDEX deliveries_todo ON deliveries (announcement_id, status);
CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id);

CREATE TABLE announce_lock (
    id              INTEGER PRIMARY KEY CHECK (id = 1), -- at most one announcer at a time
    owner           TEXT NOT NULL,                      -- host:pid:random
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    acquired_at     TEXT NOT NULL,
    expires_at      TEXT NOT NULL                       -- the lease, renewed while it runs
);

CREATE TABLE announce_state (
    key             TEXT PRIMARY KEY,                   -- 'initialized_at': the first run's time
    value           TEXT NOT NULL
);
