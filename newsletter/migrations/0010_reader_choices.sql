-- 0010: the reader's choices (issue 20). Existing readers keep what they get today: every topic,
-- one email per new item.
-- topics: NULL = everything, topics that appear later included; else a JSON array of topic slugs
-- (the blog's category slugs, and "videos"), sorted.
ALTER TABLE subscribers ADD COLUMN topics TEXT;
-- frequency: 'each' (one email per new item) or 'weekly' (one digest on the author's day and hour)
ALTER TABLE subscribers ADD COLUMN frequency TEXT NOT NULL DEFAULT 'each'
    CHECK (frequency IN ('each', 'weekly'));

-- A change of address asked on the preferences page: the new address takes over only once its
-- own confirmation email is answered. One pending change per reader (a new request replaces it).
CREATE TABLE address_changes (
    subscriber_id   INTEGER PRIMARY KEY REFERENCES subscribers (id) ON DELETE CASCADE,
    email           TEXT NOT NULL,                      -- the new address, normalised
    email_key       TEXT NOT NULL,                      -- addresses.key_of(email)
    nonce           TEXT NOT NULL,                      -- changes with each request
    requested_at    TEXT NOT NULL,
    mail_id         INTEGER                             -- its email's row in outgoing_mail:
                                                        -- an older request's row is skipped
);

-- The form's choice travels with its sign-up request (applied by the background sender).
ALTER TABLE signup_requests ADD COLUMN topics TEXT;        -- as subscribers.topics
ALTER TABLE signup_requests ADD COLUMN frequency TEXT;     -- NULL: the site's default

-- Weekly digests (newsletter.subscriptions.digests). An announcement owes each weekly reader
-- whose topics include it one row here, in the transaction that plans it (each reader of
-- frequency 'each' is owed its email in outgoing_mail instead): nothing is lost, nothing owed
-- twice (the primary key). A digest takes a reader's owed rows (digest_id set) and owes its
-- email (outgoing_mail kind 'digest', about_id = digests.id) in ONE transaction.
CREATE TABLE digests (
    id              INTEGER PRIMARY KEY,
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    period          TEXT NOT NULL,                      -- the week's scheduled time (UTC stamp),
                                                        -- or 'switch:<stamp>' (weekly -> each)
    created_at      TEXT NOT NULL,
    UNIQUE (subscriber_id, period)
);
CREATE TABLE digest_items (
    subscriber_id   INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    announcement_id INTEGER NOT NULL REFERENCES announcements (id) ON DELETE CASCADE,
    topic           TEXT NOT NULL DEFAULT '',           -- the item's topic ('' none given)
    digest_id       INTEGER REFERENCES digests (id) ON DELETE CASCADE,  -- NULL: still owed
    PRIMARY KEY (subscriber_id, announcement_id)
);
CREATE INDEX digest_items_owed ON digest_items (subscriber_id) WHERE digest_id IS NULL;
CREATE INDEX digest_items_digest ON digest_items (digest_id);
-- A scheduled week is closed once (every weekly reader's digest made in one transaction).
CREATE TABLE digest_periods (
    period          TEXT PRIMARY KEY,
    closed_at       TEXT NOT NULL
);
