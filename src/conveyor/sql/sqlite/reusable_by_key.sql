-- The latest job with this key that succeeded within the window (reuse_for): its result
-- stands in for a new run.
SELECT * FROM conveyor_jobs
WHERE unique_key = :unique_key AND state = 'succeeded' AND finished_at >= :now - :window
ORDER BY id DESC LIMIT 1
