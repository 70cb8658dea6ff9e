-- Run once per batch, its columns as arrays: each rate-limited key's GCRA state after a
-- claim started its jobs.
INSERT INTO conveyor_rate_limits (task, key, tat)
SELECT * FROM unnest(:task::text[], :key::text[], :tat::float8[])
ON CONFLICT (task, key) DO UPDATE SET tat = excluded.tat
RETURNING task
