DELETE FROM conveyor_workers WHERE heartbeat_at < conveyor_now() - %(older_than)s
