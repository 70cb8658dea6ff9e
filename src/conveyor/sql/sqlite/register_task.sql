INSERT INTO conveyor_tasks (name, queue, priority, max_attempts, worker, registered_at,
                            rate_count, rate_per, rate_burst, concurrency, keyed)
VALUES (:name, :queue, :priority, :max_attempts, :worker, :now,
        :rate_count, :rate_per, :rate_burst, :concurrency, :keyed)
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, priority = excluded.priority, max_attempts = excluded.max_attempts,
    worker = excluded.worker, registered_at = excluded.registered_at,
    rate_count = excluded.rate_count, rate_per = excluded.rate_per,
    rate_burst = excluded.rate_burst, concurrency = excluded.concurrency,
    keyed = excluded.keyed
