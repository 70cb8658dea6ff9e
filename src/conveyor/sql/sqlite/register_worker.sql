-- Register a worker under its name. A name already taken is taken over only from a worker
-- that is gone: its heartbeat older than :takeover_after seconds, or exactly the row the
-- caller saw (host, pid, start) of a process it knows has exited. No row returned: the name
-- is held by a live worker.
INSERT INTO conveyor_workers
    (name, host, pid, queues, concurrency, pool, started_at, heartbeat_at, busy, stop_requested)
VALUES (:name, :host, :pid, :queues, :concurrency, :pool, :now, :now, 0, 0)
ON CONFLICT (name) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, pool = excluded.pool,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, busy = 0,
    stop_requested = 0
WHERE conveyor_workers.heartbeat_at < :now - :takeover_after
   OR (conveyor_workers.host = :gone_host AND conveyor_workers.pid = :gone_pid
       AND conveyor_workers.started_at = :gone_started)
RETURNING name
