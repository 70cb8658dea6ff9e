-- The tasks registered with limits.
SELECT name, queue, priority, max_attempts, rate_count, rate_per, rate_burst, concurrency,
       keyed
FROM conveyor_tasks
WHERE rate_count IS NOT NULL OR concurrency IS NOT NULL
ORDER BY name
