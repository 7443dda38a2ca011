-- 0006: reports act only on proof. Used webhook tokens, shared by every worker and host; and
-- the reports that carried no proof, kept (not applied) for a person to review.

CREATE TABLE webhook_tokens (
    token           TEXT PRIMARY KEY,                   -- provider:token, used once
    expires_at      TEXT NOT NULL                       -- past it, the signature is too old anyway
);
CREATE INDEX webhook_tokens_expiry ON webhook_tokens (expires_at);

CREATE TABLE feedback_reviews (
    id              INTEGER PRIMARY KEY,
    report_key      TEXT NOT NULL UNIQUE,               -- provider:the report's id: kept once
    provider        TEXT NOT NULL,                      -- mailbox, mailgun, ses
    kind            TEXT NOT NULL,                      -- what it claimed: hard_bounce, ...
    subject         TEXT,                               -- the report's subject (mailbox)
    reason          TEXT,                               -- its words, cut short
    message_id      TEXT,                               -- the original Message-ID it quoted
    why             TEXT NOT NULL,                      -- why it changed nothing
    received_at     TEXT NOT NULL
);
CREATE INDEX feedback_reviews_time ON feedback_reviews (received_at);

CREATE TABLE feedback_review_names (
    review_id       INTEGER NOT NULL REFERENCES feedback_reviews (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,                      -- an address it named (at most 10)
    email_key       TEXT NOT NULL                       -- its key, so forget finds it
);
CREATE INDEX feedback_review_names_key ON feedback_review_names (email_key);
