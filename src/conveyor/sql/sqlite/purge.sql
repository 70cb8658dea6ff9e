DELETE FROM conveyor_jobs
WHERE queue = :queue AND state != 'running' AND (:state IS NULL OR state = :state)
