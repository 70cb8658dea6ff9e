SELECT * FROM conveyor_jobs WHERE id = ANY(:ids::bigint[])
