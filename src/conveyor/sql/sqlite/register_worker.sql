INSERT OR REPLACE INTO conveyor_workers
    (name, host, pid, queues, concurrency, pool, started_at, heartbeat_at, busy, stop_requested)
VALUES (:name, :host, :pid, :queues, :concurrency, :pool, :now, :now, 0, 0)
