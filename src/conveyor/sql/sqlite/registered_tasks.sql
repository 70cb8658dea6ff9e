-- The registered tasks among the names given (a JSON array): primary-key lookups.
SELECT name, queue, priority, max_attempts FROM conveyor_tasks
WHERE name IN (SELECT value FROM json_each(:names))
