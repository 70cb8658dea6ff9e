-- One jobs table, state explicit, a partial index per hot state.
CREATE TABLE conveyor_jobs (
    -- Assigned by enqueue from next_id.sql: above every id ever handed out, so a Job handle
    -- never comes to name another job (AUTOINCREMENT would cost a write per transaction).
    id               INTEGER PRIMARY KEY,
    task             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN
                         ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    args             TEXT    NOT NULL DEFAULT '[]',
    kwargs           TEXT    NOT NULL DEFAULT '{}',
    unique_key       TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    run_at           REAL    NOT NULL,
    enqueued_at      REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    worker           TEXT,     -- the worker that claimed the latest attempt
    lease_owner      TEXT,
    lease_token      INTEGER,
    lease_expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress         TEXT,
    result           TEXT,
    error            TEXT
);

-- Claim walks this in order: equal priority runs in enqueue (run_at, id) order.
CREATE INDEX conveyor_jobs_queued ON conveyor_jobs (queue, priority, run_at, id)
    WHERE state = 'queued';
CREATE INDEX conveyor_jobs_scheduled ON conveyor_jobs (run_at)
    WHERE state = 'scheduled';
CREATE INDEX conveyor_jobs_running ON conveyor_jobs (lease_expires_at)
    WHERE state = 'running';
CREATE INDEX conveyor_jobs_finished ON conveyor_jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
-- A unique key holds only while its job is waiting or running.
CREATE UNIQUE INDEX conveyor_jobs_unique_key ON conveyor_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'running');

-- The highest job id ever deleted; raised before every DELETE (raise_id_floor.sql).
CREATE TABLE conveyor_id_floor (
    floor INTEGER NOT NULL
);
INSERT INTO conveyor_id_floor (floor) VALUES (0);

-- Attempts that did not succeed, with what they raised.
CREATE TABLE conveyor_attempts (
    job_id        INTEGER NOT NULL REFERENCES conveyor_jobs (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    worker        TEXT,
    started_at    REAL,
    finished_at   REAL    NOT NULL,
    outcome       TEXT    NOT NULL,
    error_type    TEXT,
    error_message TEXT,
    traceback     TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE conveyor_workers (
    name           TEXT    PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    queues         TEXT    NOT NULL,
    concurrency    INTEGER NOT NULL,
    pool           TEXT    NOT NULL,
    started_at     REAL    NOT NULL,
    heartbeat_at   REAL    NOT NULL,
    busy           INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
