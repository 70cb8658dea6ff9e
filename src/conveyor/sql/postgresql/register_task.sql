INSERT INTO conveyor_tasks (name, queue, priority, max_attempts, worker, registered_at)
VALUES (:name, :queue, :priority, :max_attempts, :worker, :now)
ON CONFLICT (name) DO UPDATE
SET queue = excluded.queue, priority = excluded.priority, max_attempts = excluded.max_attempts,
    worker = excluded.worker, registered_at = excluded.registered_at
