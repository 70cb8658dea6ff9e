SELECT id FROM conveyor_jobs WHERE workflow = :id ORDER BY id FOR NO KEY UPDATE
