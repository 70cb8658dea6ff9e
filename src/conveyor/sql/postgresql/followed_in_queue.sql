-- Jobs a purge would delete whose followers wait for them: they are cancelled first.
SELECT id FROM conveyor_jobs
WHERE queue = :queue AND state IN ('waiting', 'scheduled', 'queued') AND followers
  AND (CAST(:state AS TEXT) IS NULL OR state = :state)
