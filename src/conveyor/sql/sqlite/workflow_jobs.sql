SELECT * FROM conveyor_jobs WHERE workflow = :id ORDER BY id
