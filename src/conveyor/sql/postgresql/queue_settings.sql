SELECT name, paused, lifo, concurrency, updated_at FROM conveyor_queues ORDER BY name
