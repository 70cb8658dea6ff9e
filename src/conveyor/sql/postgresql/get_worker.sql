SELECT * FROM conveyor_workers WHERE name = :name
