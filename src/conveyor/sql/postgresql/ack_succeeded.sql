-- Run once per batch, its columns as arrays (PostgreSQL: one statement, not one per job).
-- Fenced by the lease token, which stays (see ack_failed). A job with followers (children,
-- callbacks) is acked by ack_followed, which releases them: one that gained them since its
-- claim is left running here, and the store acks it again that way.
-- `j.state || ''` rather than `j.state`: the same test, which the planner cannot answer from
-- the index of running jobs (conveyor_jobs_running), so it finds each element's job by the
-- primary key (a small table: reads it whole), whatever the statistics say of running jobs.
-- (Every statement that names jobs by id and tests a state that a partial index covers does
-- the same: retry_job and child_rewaits with the finished jobs' index.)
-- After an ANALYZE that saw few running, it took that index instead: a prepared statement's
-- generic plan then read every running job of every worker for each element (a nested loop:
-- 9,216 comparisons for a round of 96, 1.9 ms against 0.5), a custom plan each one once.
UPDATE conveyor_jobs AS j
SET state = 'succeeded', result = done.result, error = NULL, finished_at = :now,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(:id::bigint[], :token::bigint[], :result::text[]) AS done (id, token, result)
WHERE j.id = done.id AND j.lease_token = done.token AND j.state || '' = 'running'
  AND NOT j.followers
RETURNING j.id
