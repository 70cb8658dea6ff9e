-- Rows another worker is promoting are skipped, not waited for. (SELECT conveyor_now()) is
-- evaluated once, so the range scan can use conveyor_jobs_scheduled; a bare VOLATILE call
-- in the WHERE clause would be re-evaluated per row and scan every scheduled job.
UPDATE conveyor_jobs SET state = 'queued'
WHERE id IN (SELECT id FROM conveyor_jobs
             WHERE state = 'scheduled' AND run_at <= (SELECT conveyor_now())
             ORDER BY run_at
             LIMIT 1000
             FOR UPDATE SKIP LOCKED)
