SELECT state FROM conveyor_jobs WHERE id = :id
