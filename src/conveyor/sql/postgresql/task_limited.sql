-- Whether a task was registered with limits (no row: never registered).
SELECT rate_count IS NOT NULL OR concurrency IS NOT NULL AS limited
FROM conveyor_tasks WHERE name = :name
