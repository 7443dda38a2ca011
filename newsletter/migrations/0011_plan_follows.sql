-- 0011: following an exercise plan by email (issue 21). Which plan a reader follows is health
-- data: the least is stored (address, plan, schedule, consent record), and the row is erased at
-- once by the stop link or `subscribers.forget`, and some days after the plan ends. A follower
-- need not be a subscriber: the ledger of outgoing mail gets a second kind of recipient.

CREATE TABLE plan_follows (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,               -- opaque, random; the only id in links
    email           TEXT NOT NULL,                      -- normalised by addresses.normalize
    email_key       TEXT NOT NULL,                      -- addresses.key_of(email)
    plan_id         TEXT NOT NULL,                      -- the id in exercises/plans.json
    weekday         INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),    -- Monday is 0
    hour            INTEGER NOT NULL CHECK (hour BETWEEN 0 AND 23),      -- in the site's TIMEZONE
    weeks           INTEGER NOT NULL CHECK (weeks BETWEEN 1 AND 52),
    status          TEXT NOT NULL DEFAULT 'unconfirmed'
                    CHECK (status IN ('unconfirmed', 'following', 'ended')),
    confirm_nonce   TEXT NOT NULL,                      -- changes with each new request
    created_at      TEXT NOT NULL,
    confirmed_at    TEXT,
    starts_at       TEXT,                               -- week 1's email (UTC), once confirmed
    ended_at        TEXT,                               -- the closing email went (or was given up)
    consent_at      TEXT,                               -- consent record: when,
    consent_source  TEXT,                               -- on which page,
    consent_ip_hash TEXT,                               -- from which IP (keyed hash)
    UNIQUE (email_key, plan_id)
);
CREATE INDEX plan_follows_status ON plan_follows (status, starts_at);

-- outgoing_mail: a row is owed to a subscriber or to a plan follow, exactly one of the two;
-- erasing either erases its rows. (SQLite cannot relax NOT NULL in place: the table is rebuilt,
-- ids and every row kept.)
CREATE TABLE outgoing_mail_0011 (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    subscriber_id   INTEGER REFERENCES subscribers (id) ON DELETE CASCADE,
    follow_id       INTEGER REFERENCES plan_follows (id) ON DELETE CASCADE,
    about_id        INTEGER,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    locked_until    TEXT,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT,
    CHECK ((subscriber_id IS NULL) <> (follow_id IS NULL)),
    UNIQUE (about_id, kind, subscriber_id)
);
INSERT INTO outgoing_mail_0011 (id, kind, subscriber_id, about_id, status, attempts, created_at,
                                next_attempt_at, locked_until, updated_at, sent_at, last_error)
    SELECT id, kind, subscriber_id, about_id, status, attempts, created_at, next_attempt_at,
           locked_until, updated_at, sent_at, last_error
    FROM outgoing_mail ORDER BY id;
DROP TABLE outgoing_mail;
ALTER TABLE outgoing_mail_0011 RENAME TO outgoing_mail;
CREATE INDEX outgoing_mail_due ON outgoing_mail (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outgoing_mail_leases ON outgoing_mail (locked_until) WHERE status = 'sending';
CREATE INDEX outgoing_mail_about ON outgoing_mail (about_id, kind);
CREATE INDEX outgoing_mail_subscriber ON outgoing_mail (subscriber_id);
CREATE UNIQUE INDEX outgoing_mail_follow ON outgoing_mail (follow_id, kind, about_id)
    WHERE follow_id IS NOT NULL;
