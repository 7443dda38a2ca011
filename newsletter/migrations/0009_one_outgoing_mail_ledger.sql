-- 0009: one ledger of outgoing mail. Every email the newsletter sends (a confirmation, an
-- announcement, and the kinds that come next) is one row here, with one state vocabulary, one
-- lease, one retry policy and one record of the result (newsletter.outgoing). The confirmation
-- queue (email_queue) and the announcements' deliveries move in, pending work included: the
-- queue's rows keep their ids (a confirmation's Message-ID and VERP return path are sealed with
-- its id, so a bounce to one sent before the upgrade still proves whom it is about).

CREATE TABLE outgoing_mail (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,                      -- 'confirmation', 'announcement', ...
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    about_id        INTEGER,                            -- what it is about, in its kind's table
                                                        -- (announcements.id); NULL: nothing else
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,         -- answers received (not claims)
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,                      -- when 'queued': due time
    locked_until    TEXT,                               -- when 'sending': the sender's lease
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT,
    UNIQUE (about_id, kind, subscriber_id)              -- NULL about_ids never collide
);
-- Partial indexes: only the rows still to send, or in flight, are in them (a sent row leaves
-- them, and stays only in the two below), so marking a row sent touches one small index.
CREATE INDEX outgoing_mail_due ON outgoing_mail (next_attempt_at) WHERE status = 'queued';
CREATE INDEX outgoing_mail_leases ON outgoing_mail (locked_until) WHERE status = 'sending';
CREATE INDEX outgoing_mail_about ON outgoing_mail (about_id, kind);  -- no status: never moves
CREATE INDEX outgoing_mail_subscriber ON outgoing_mail (subscriber_id);

INSERT INTO outgoing_mail (id, kind, subscriber_id, about_id, status, attempts, created_at,
                           next_attempt_at, locked_until, updated_at, sent_at, last_error)
    SELECT id, kind, subscriber_id, NULL, status,
           -- a queue row counted its claim as an attempt; a row caught in flight had no answer
           CASE WHEN status = 'sending' THEN max(attempts - 1, 0) ELSE attempts END,
           created_at, next_attempt_at, locked_until, coalesce(sent_at, next_attempt_at),
           sent_at, last_error
    FROM email_queue ORDER BY id;

INSERT INTO outgoing_mail (kind, subscriber_id, about_id, status, attempts, created_at,
                           next_attempt_at, updated_at, sent_at, last_error)
    SELECT 'announcement', subscriber_id, announcement_id,
           CASE status WHEN 'pending' THEN 'queued' ELSE status END, attempts,
           updated_at, updated_at, updated_at, sent_at, last_error
    FROM deliveries ORDER BY id;

DROP TABLE email_queue;
DROP TABLE deliveries;
