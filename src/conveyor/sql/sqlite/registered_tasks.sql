SELECT name, queue, priority, max_attempts, rate_count, rate_per, rate_burst, concurrency,
       keyed
FROM conveyor_tasks
WHERE name IN (SELECT value FROM json_each(:names))
