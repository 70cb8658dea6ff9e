DELETE FROM conveyor_jobs
WHERE queue = :queue AND state != 'running'
  AND (CAST(:state AS TEXT) IS NULL OR state = :state)
