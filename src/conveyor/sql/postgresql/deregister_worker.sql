DELETE FROM conveyor_workers WHERE name = :name
