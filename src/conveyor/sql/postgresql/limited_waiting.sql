-- Whether any job waits with a limit key (one seek along conveyor_jobs_limited): such a job
-- is claimed only by the limited claim, even when no task has limits any more.
SELECT EXISTS (SELECT 1 FROM conveyor_jobs
               WHERE state = 'queued' AND limit_key IS NOT NULL) AS waiting
