-- Queues of the tasks workers registered (their default queues).
SELECT DISTINCT queue FROM conveyor_tasks
