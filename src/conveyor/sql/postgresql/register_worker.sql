-- Takes the name unless a live worker holds it: a row whose heartbeat is older than
-- :takeover_after seconds, or exactly the row of a process the caller knows has exited
-- (:gone_*), is taken over. Returns no row when the name stays with its holder.
INSERT INTO conveyor_workers
    (name, host, pid, queues, concurrency, pool, started_at, heartbeat_at, busy, stop_requested)
VALUES (:name, :host, :pid, :queues, :concurrency, :pool, :now, :now, 0, false)
ON CONFLICT (name) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, pool = excluded.pool,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, busy = 0,
    stop_requested = false
WHERE conveyor_workers.heartbeat_at < :now - :takeover_after
   OR (conveyor_workers.host = :gone_host AND conveyor_workers.pid = :gone_pid
       AND conveyor_workers.started_at = :gone_started)
RETURNING name
