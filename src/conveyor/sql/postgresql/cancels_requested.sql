-- Which of these running jobs someone asked to cancel.
SELECT id FROM conveyor_jobs
WHERE id = ANY(%(ids)s::bigint[]) AND state = 'running' AND cancel_requested
