-- Whether a session waits for a lock on a whole table (LOCK TABLE and the like), which stops
-- every other session's writes to it too. Row locks do not count: they stop only some rows.
SELECT wait_event_type = 'Lock' AND wait_event = 'relation' AS blocked
FROM pg_stat_activity WHERE pid = :pid
