-- Rate and concurrency limits. A job of a limited task carries its limit key ('' when the
-- task's limits are not keyed); NULL: no limit applies. Limited jobs wait in their own index,
-- so the plain claim never reads past them, and the limited claim finds each key's head.
ALTER TABLE conveyor_jobs ADD COLUMN limit_key TEXT;
DROP INDEX conveyor_jobs_queued;
CREATE INDEX conveyor_jobs_queued ON conveyor_jobs (queue, priority, run_at, id)
    WHERE state = 'queued' AND limit_key IS NULL;
CREATE INDEX conveyor_jobs_limited ON conveyor_jobs (queue, task, limit_key, priority, run_at, id)
    WHERE state = 'queued' AND limit_key IS NOT NULL;
-- A concurrency limit counts running jobs of its task and key: the rows, not a counter, so a
-- killed worker's slot frees itself when its job is rescued.
CREATE INDEX conveyor_jobs_running_limited ON conveyor_jobs (task, limit_key)
    WHERE state = 'running' AND limit_key IS NOT NULL;

-- A task's limits, as the last worker to start registered them (NULL: none).
ALTER TABLE conveyor_tasks ADD COLUMN rate_count INTEGER;
ALTER TABLE conveyor_tasks ADD COLUMN rate_per DOUBLE PRECISION;
ALTER TABLE conveyor_tasks ADD COLUMN rate_burst INTEGER;
ALTER TABLE conveyor_tasks ADD COLUMN concurrency INTEGER;
ALTER TABLE conveyor_tasks ADD COLUMN keyed BOOLEAN NOT NULL DEFAULT false;
-- At most this many jobs of the queue run at once, across every worker (NULL: no limit).
ALTER TABLE conveyor_queues ADD COLUMN concurrency INTEGER;

-- Each rate-limited (task, key)'s GCRA state: the theoretical arrival time of its next start.
CREATE TABLE conveyor_rate_limits (
    task TEXT             NOT NULL,
    key  TEXT             NOT NULL,
    tat  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (task, key)
);
