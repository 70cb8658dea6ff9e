DELETE FROM conveyor_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
  AND finished_at < (SELECT conveyor_now()) - %(older_than)s
