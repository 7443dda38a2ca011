-- 0003: the announcer's run lock is now a file lock (flock on <db>-announce.lock), which the
-- kernel releases when the run ends or dies; the lease row and its renewal thread are gone.

DROP TABLE IF EXISTS announce_lock;
