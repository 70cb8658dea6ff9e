SELECT * FROM conveyor_jobs
WHERE unique_key = :unique_key AND state IN ('scheduled', 'queued', 'running')
