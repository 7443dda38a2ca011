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
    requested_at    TEXT NOT NULL
);
