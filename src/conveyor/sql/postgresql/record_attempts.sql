-- Every attempt of a round that did not succeed, recorded where its ack matched (run
-- after the acks: a rescue records its own the same way). Columns as arrays.
INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message,
     traceback)
SELECT o.job_id, o.attempt, o.worker, o.started_at, o.finished_at, o.outcome, o.error_type,
       o.error_message, o.traceback
FROM unnest(:job_id::bigint[], :attempt::integer[], :worker::text[], :started_at::double precision[], :finished_at::double precision[], :outcome::text[], :error_type::text[], :error_message::text[], :traceback::text[], :token::bigint[])
     AS o (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message, traceback, token)
WHERE EXISTS (SELECT 1 FROM conveyor_jobs AS j
              WHERE j.id = o.job_id AND j.lease_token = o.token AND j.state != 'running')
ON CONFLICT (job_id, attempt) DO UPDATE
SET worker = excluded.worker, started_at = excluded.started_at,
    finished_at = excluded.finished_at, outcome = excluded.outcome,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback
