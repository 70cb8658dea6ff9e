SELECT name, paused, lifo, updated_at FROM conveyor_queues ORDER BY name
