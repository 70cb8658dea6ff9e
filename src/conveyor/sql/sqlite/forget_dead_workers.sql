DELETE FROM conveyor_workers WHERE heartbeat_at < :before
