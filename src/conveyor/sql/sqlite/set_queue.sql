-- A queue's settings: a value left NULL keeps what is stored (or the default, running FIFO,
-- no concurrency limit); :set_concurrency writes :concurrency, NULL (no limit) included.
INSERT INTO conveyor_queues (name, paused, lifo, concurrency, updated_at)
VALUES (:name, coalesce(:paused, 0), coalesce(:lifo, 0), :concurrency, :now)
ON CONFLICT (name) DO UPDATE
SET paused      = coalesce(:paused, conveyor_queues.paused),
    lifo        = coalesce(:lifo, conveyor_queues.lifo),
    concurrency = CASE WHEN :set_concurrency THEN :concurrency
                       ELSE conveyor_queues.concurrency END,
    updated_at  = excluded.updated_at
