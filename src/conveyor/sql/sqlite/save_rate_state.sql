-- Run once per rate-limited key of a batch: its GCRA state after a claim started its jobs.
INSERT INTO conveyor_rate_limits (task, key, tat) VALUES (:task, :key, :tat)
ON CONFLICT (task, key) DO UPDATE SET tat = excluded.tat
RETURNING task
