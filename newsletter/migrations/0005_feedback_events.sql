-- 0005: what mail providers report back (bounces and spam complaints), in one vocabulary.

CREATE TABLE feedback_events (
    id              INTEGER PRIMARY KEY,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('hard_bounce', 'soft_bounce', 'complaint')),
    provider        TEXT NOT NULL,                      -- mailgun, ses, mailbox, smtp
    reason          TEXT,                               -- the provider's words
    message_id      TEXT,                               -- the message it answers, when known
    occurred_at     TEXT NOT NULL,                      -- when the provider saw it
    received_at     TEXT NOT NULL,                      -- when we read it
    event_key       TEXT UNIQUE                         -- the provider's id: read once
);
CREATE INDEX feedback_events_subscriber ON feedback_events (subscriber_id, kind, occurred_at);
CREATE INDEX feedback_events_time ON feedback_events (occurred_at);
