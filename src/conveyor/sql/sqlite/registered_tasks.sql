SELECT name, queue, priority, max_attempts FROM conveyor_tasks
WHERE name IN (SELECT value FROM json_each(:names))
