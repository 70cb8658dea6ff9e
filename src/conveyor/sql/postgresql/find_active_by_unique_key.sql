SELECT * FROM conveyor_jobs
WHERE unique_key = :unique_key AND state IN ('waiting', 'scheduled', 'queued', 'running')
