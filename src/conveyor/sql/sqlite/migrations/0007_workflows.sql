-- Workflows: jobs that wait for other jobs. A job with unfinished parents is 'waiting'; its
-- parents' ends count it down in the transaction of each end (no unlock job polls).
ALTER TABLE conveyor_jobs ADD COLUMN workflow INTEGER;
ALTER TABLE conveyor_jobs ADD COLUMN pending_parents INTEGER NOT NULL DEFAULT 0;
-- 'cancel' (a failed or cancelled parent cancels it) or 'run' (it runs once all ended).
ALTER TABLE conveyor_jobs ADD COLUMN on_parent_failure TEXT;
-- How its parents' results become its first argument: a job id, or a JSON array of them
-- (nested for a group of groups); NULL: they do not.
ALTER TABLE conveyor_jobs ADD COLUMN feed TEXT;
-- It has children or callbacks: its end must release them (claims return this, so the end
-- of a job without any costs nothing).
ALTER TABLE conveyor_jobs ADD COLUMN followers INTEGER NOT NULL DEFAULT 0;
-- {"on_success": job, "on_failure": job}: jobs to enqueue when it ends so (JSON).
ALTER TABLE conveyor_jobs ADD COLUMN callbacks TEXT;

-- SQLite cannot alter a CHECK constraint: its text is edited in place, as SQLite documents
-- for loosening one (the schema cookie is bumped after this script).
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, '''failed'', ''cancelled'')', '''failed'', ''cancelled'', ''waiting'')')
WHERE type = 'table' AND name = 'conveyor_jobs';
PRAGMA writable_schema = OFF;

-- A unique key is held by a waiting job too.
DROP INDEX conveyor_jobs_unique_key;
CREATE UNIQUE INDEX conveyor_jobs_unique_key ON conveyor_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('waiting', 'scheduled', 'queued', 'running');
CREATE INDEX conveyor_jobs_workflow ON conveyor_jobs (workflow, id) WHERE workflow IS NOT NULL;

-- parent -> child. `done`: the parent's end was counted (once: a retried parent undoes it).
CREATE TABLE conveyor_edges (
    parent INTEGER NOT NULL REFERENCES conveyor_jobs (id) ON DELETE CASCADE,
    child  INTEGER NOT NULL REFERENCES conveyor_jobs (id) ON DELETE CASCADE,
    done   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;
CREATE INDEX conveyor_edges_child ON conveyor_edges (child, parent);

CREATE TABLE conveyor_workflows (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    created_at        REAL    NOT NULL,
    -- Its jobs' ids in the order of its plan (JSON; a step reused by its unique key is
    -- another workflow's job, or none's).
    jobs              TEXT    NOT NULL DEFAULT '[]',
    -- Where its result comes from: a job id, or a JSON array of them (as a feed).
    output            TEXT    NOT NULL,
    on_parent_failure TEXT    NOT NULL
);
