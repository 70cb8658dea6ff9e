INSERT INTO conveyor_workers
    (name, host, pid, queues, concurrency, pool, started_at, heartbeat_at, busy, stop_requested)
VALUES (%(name)s, %(host)s, %(pid)s, %(queues)s, %(concurrency)s, %(pool)s,
        conveyor_now(), conveyor_now(), 0, false)
ON CONFLICT (name) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, pool = excluded.pool,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, busy = 0,
    stop_requested = false
