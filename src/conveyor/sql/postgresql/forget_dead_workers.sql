DELETE FROM conveyor_workers WHERE heartbeat_at < (SELECT conveyor_now()) - %(older_than)s
