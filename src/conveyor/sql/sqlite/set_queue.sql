-- A queue's settings: a value left NULL keeps what is stored (or the default, running FIFO).
INSERT INTO conveyor_queues (name, paused, lifo, updated_at)
VALUES (:name, coalesce(:paused, 0), coalesce(:lifo, 0), :now)
ON CONFLICT (name) DO UPDATE
SET paused     = coalesce(:paused, conveyor_queues.paused),
    lifo       = coalesce(:lifo, conveyor_queues.lifo),
    updated_at = excluded.updated_at
