-- 0001: subscribers (double opt-in) and the queue of outgoing transactional emails.

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
