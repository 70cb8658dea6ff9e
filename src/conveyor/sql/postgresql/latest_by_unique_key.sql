-- The latest job that had a key (the index conveyor_jobs_by_key, read backwards).
SELECT * FROM conveyor_jobs WHERE unique_key = :unique_key ORDER BY id DESC LIMIT 1
