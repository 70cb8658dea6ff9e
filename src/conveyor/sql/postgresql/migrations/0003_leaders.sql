-- Leader leases of singleton worker duties (a pruner, rollups): one row per duty, held by one
-- worker until `expires_at` (the database's clock, conveyor_now()) unless it renews it first.
-- An optimisation only: whatever must happen once is guarded by constraints, not by a leader.
CREATE TABLE conveyor_leaders (
    duty       TEXT             PRIMARY KEY,
    owner      TEXT             NOT NULL,  -- the worker's name
    expires_at DOUBLE PRECISION NOT NULL
);
