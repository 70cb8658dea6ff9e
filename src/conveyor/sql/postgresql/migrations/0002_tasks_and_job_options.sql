-- The tasks workers know, registered by every worker at start (the last one wins): an
-- enqueue by name from a process that does not import the task takes its queue, priority and
-- max_attempts from here, and a name no worker ever registered is warned about.
CREATE TABLE conveyor_tasks (
    name          TEXT             PRIMARY KEY,
    queue         TEXT             NOT NULL,
    priority      INTEGER          NOT NULL,
    max_attempts  INTEGER          NOT NULL,
    worker        TEXT             NOT NULL,  -- the worker that registered it last
    registered_at DOUBLE PRECISION NOT NULL
);

-- A job's own retry backoff and timeout, given at enqueue (task.options(backoff=...,
-- timeout=...)); NULL: the task's. A timeout of +Infinity: no limit for this job.
-- Nullable without a default: adding them rewrites no row.
ALTER TABLE conveyor_jobs ADD COLUMN backoff DOUBLE PRECISION;
ALTER TABLE conveyor_jobs ADD COLUMN timeout DOUBLE PRECISION;

-- get_job_by_key: the latest job that held a key, finished ones included (the unique index
-- covers waiting and running jobs only). Jobs without a key are not in it.
CREATE INDEX conveyor_jobs_by_key ON conveyor_jobs (unique_key, id)
    WHERE unique_key IS NOT NULL;
