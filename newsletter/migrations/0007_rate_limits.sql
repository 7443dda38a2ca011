-- 0007: rate limits kept where every worker and host sees them (ratelimit.SharedRateLimiter): one
-- token bucket per (scope, client), so that "20 an hour" means 20 whatever worker answers.

CREATE TABLE rate_limits (
    scope           TEXT NOT NULL,                      -- which limit: 'subscribe', 'webhooks'
    key             BLOB NOT NULL,                      -- keyed hash of the client (never an IP)
    tokens          REAL NOT NULL,                      -- left at `updated`
    updated         REAL NOT NULL,                      -- Unix time of the last token taken
    PRIMARY KEY (scope, key)
);
-- No index on `updated`: it would be a second page written by every request; the prune (once a
-- minute per process) scans the scope's rows instead.
