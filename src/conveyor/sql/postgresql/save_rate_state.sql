-- A rate-limited key's GCRA state after a claim started some of its jobs.
INSERT INTO conveyor_rate_limits (task, key, tat) VALUES (:task, :key, :tat)
ON CONFLICT (task, key) DO UPDATE SET tat = excluded.tat
