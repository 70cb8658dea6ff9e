DELETE FROM conveyor_workers WHERE heartbeat_at < :now - :older_than
