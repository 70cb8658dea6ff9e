SELECT feed, args FROM conveyor_jobs WHERE id = :id
