-- 0004: sign-up requests, answered at once and worked through by the background sender, so that
-- the answer to the form costs the same (one insert) for every address, known or not.

CREATE TABLE signup_requests (
    id              INTEGER PRIMARY KEY,
    email           TEXT NOT NULL,                      -- normalised by email-validator
    email_key       TEXT NOT NULL,                      -- casefolded email
    source          TEXT,                               -- the page the form was on
    ip_hash         TEXT,                               -- keyed hash of the client's IP
    created_at      TEXT NOT NULL
);
