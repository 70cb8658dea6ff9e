-- A job's own soft time limit, given at enqueue (task.options(soft_timeout=...)); NULL: the
-- task's. +Infinity: no soft limit for this job.
ALTER TABLE conveyor_jobs ADD COLUMN soft_timeout DOUBLE PRECISION;
