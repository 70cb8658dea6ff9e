-- Schedules as declared in code, written by each scheduler when it starts (the last one
-- wins), so the CLI lists them without importing the app. A schedule gone from the code is
-- kept, inactive: it never fires again.
CREATE TABLE conveyor_schedules (
    name         TEXT    PRIMARY KEY,
    task         TEXT    NOT NULL,
    cron         TEXT,              -- as written (an @alias kept); NULL for `every`
    every        REAL,              -- seconds; NULL for `cron`
    tz           TEXT    NOT NULL,
    args         TEXT    NOT NULL,
    kwargs       TEXT    NOT NULL,
    catch_up     TEXT    NOT NULL,
    max_lateness REAL,
    active       INTEGER NOT NULL DEFAULT 1,
    paused       INTEGER NOT NULL DEFAULT 0,
    -- Slots at or before this time are never fired: set when the schedule first appears, when
    -- its timing changes (a new expression takes effect from its next slot) and on resume.
    since        REAL    NOT NULL,
    synced_by    TEXT    NOT NULL,  -- the worker that wrote it last
    synced_at    REAL    NOT NULL
);

-- A slot is taken by inserting its row in the transaction that enqueues its job: any number
-- of schedulers fire it once. Old rows are pruned, the latest of each schedule kept.
CREATE TABLE conveyor_schedule_slots (
    schedule TEXT    NOT NULL,
    slot     REAL    NOT NULL,
    job_id   INTEGER,
    taken_at REAL    NOT NULL,
    PRIMARY KEY (schedule, slot)
);

-- The schedule a job runs for and its slot (NULL for a run made by hand: `schedules run`).
ALTER TABLE conveyor_jobs ADD COLUMN schedule TEXT;
ALTER TABLE conveyor_jobs ADD COLUMN schedule_slot REAL;
CREATE INDEX conveyor_jobs_by_schedule ON conveyor_jobs (schedule, id)
    WHERE schedule IS NOT NULL;

-- Queue settings shared by every worker: a paused queue takes jobs but none is claimed from
-- it; `lifo` runs the newest job of equal priority first. A queue without a row is running,
-- first in first out.
CREATE TABLE conveyor_queues (
    name       TEXT    PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    lifo       INTEGER NOT NULL DEFAULT 0,
    updated_at REAL    NOT NULL
);
