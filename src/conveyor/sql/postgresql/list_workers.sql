SELECT * FROM conveyor_workers ORDER BY started_at
