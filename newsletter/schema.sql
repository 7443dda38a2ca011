-- The newsletter's SQLite schema, as it stands after the last migration in migrations/.
-- A new database is created from this file; an existing one is brought up to date by the
-- numbered migrations (PRAGMA user_version holds the number of the last one applied).
-- Change both together: tests/test_store.py checks that they build the same schema.
--

CREATE TABLE subscribers (
    id                   INTEGER PRIMARY KEY,
    public_id            TEXT NOT NULL UNIQUE,          -- opaque, random; the only id in links
    email                TEXT NOT NULL,                 -- normalised by email-validator
    email_key            TEXT NOT NULL UNIQUE,          -- casefolded email: one row per address
    status               TEXT NOT NULL DEFAULT 'unconfirmed'
                         CHECK (status IN ('unconfirmed', 'confirmed', 'unsubscribed',
                                           'bounced', 'complained')),
    confirm_nonce        TEXT NOT NULL,                 -- changes with each new opt-in request
    created_at           TEXT NOT NULL,                 -- timestamps: UTC, ISO 8601, 'Z'
    status_changed_at    TEXT NOT NULL,
    confirmation_sent_at TEXT,                          -- last confirmation email queued
    confirmed_at         TEXT,
    unsubscribed_at      TEXT,
    bounced_at           TEXT,
    complained_at        TEXT,
    consent_at           TEXT,                          -- consent record: when,
    consent_source       TEXT,                          -- on which page,
    consent_ip_hash      TEXT                           -- from which IP (keyed hash)
);
CREATE INDEX subscribers_status ON subscribers (status);

CREATE TABLE email_queue (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,                      -- 'confirmation' (more kinds later)
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,                      -- when 'queued': due time
    locked_until    TEXT,                               -- when 'sending': lease of the sender
    sent_at         TEXT,
    last_error      TEXT
);
CREATE INDEX email_queue_due ON email_queue (status, next_attempt_at);
CREATE INDEX email_queue_subscriber ON email_queue (subscriber_id);

-- Announcements (migration 0002): one per new feed item (or digest), the delivery ledger with one
-- row per (announcement, subscriber), ON DELETE CASCADE from subscribers so forgetting a
-- subscriber removes their ledger rows too, and the announcer's run lock.

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
