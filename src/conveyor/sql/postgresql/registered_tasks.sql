SELECT name, queue, priority, max_attempts FROM conveyor_tasks
WHERE name IN (SELECT unnest(:names::text[]))
