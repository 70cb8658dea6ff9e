-- Rows another worker is promoting are skipped, not waited for.
UPDATE conveyor_jobs SET state = 'queued'
WHERE id IN (SELECT id FROM conveyor_jobs
             WHERE state = 'scheduled' AND run_at <= conveyor_now()
             ORDER BY run_at
             LIMIT 1000
             FOR UPDATE SKIP LOCKED)
