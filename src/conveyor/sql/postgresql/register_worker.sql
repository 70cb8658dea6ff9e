-- Register a worker under its name. A name already taken is taken over only from a worker
-- that is gone: its heartbeat older than %(takeover_after)s seconds, or exactly the row the
-- caller saw (host, pid, start) of a process it knows has exited. No row returned: the name
-- is held by a live worker.
INSERT INTO conveyor_workers
    (name, host, pid, queues, concurrency, pool, started_at, heartbeat_at, busy, stop_requested)
VALUES (%(name)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s, %(pool)s,
        conveyor_now(), conveyor_now(), 0, false)
ON CONFLICT (name) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, pool = excluded.pool,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, busy = 0,
    stop_requested = false
WHERE conveyor_workers.heartbeat_at < conveyor_now() - %(takeover_after)s
   OR (conveyor_workers.host = %(gone_host)s AND conveyor_workers.pid = %(gone_pid)s
       AND conveyor_workers.started_at = %(gone_started)s)
RETURNING name
