SELECT id FROM conveyor_jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running' AND cancel_requested
