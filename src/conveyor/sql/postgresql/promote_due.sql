-- Scheduled jobs whose time has come become claimable, at most 1000 a claim.
UPDATE conveyor_jobs SET state = 'queued'
WHERE id IN (SELECT id FROM conveyor_jobs
             WHERE state = 'scheduled' AND run_at <= :now
             ORDER BY run_at
             LIMIT 1000
             FOR UPDATE SKIP LOCKED)
