SELECT * FROM conveyor_jobs WHERE id = :id
