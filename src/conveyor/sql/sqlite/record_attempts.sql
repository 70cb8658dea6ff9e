-- Every attempt of a round that did not succeed, recorded where its ack matched (run
-- after the acks: a rescue records its own the same way). :batch: a JSON array of objects.
INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error_type, error_message,
     traceback)
SELECT o.job_id, o.attempt, o.worker, o.started_at, o.finished_at, o.outcome, o.error_type,
       o.error_message, o.traceback
FROM (SELECT json_extract(value, '$.job_id') AS job_id,
             json_extract(value, '$.attempt') AS attempt,
             json_extract(value, '$.worker') AS worker,
             json_extract(value, '$.started_at') AS started_at,
             json_extract(value, '$.finished_at') AS finished_at,
             json_extract(value, '$.outcome') AS outcome,
             json_extract(value, '$.error_type') AS error_type,
             json_extract(value, '$.error_message') AS error_message,
             json_extract(value, '$.traceback') AS traceback,
             json_extract(value, '$.token') AS token
      FROM json_each(:batch)) AS o
WHERE EXISTS (SELECT 1 FROM conveyor_jobs AS j
              WHERE j.id = o.job_id AND j.lease_token = o.token AND j.state != 'running')
ON CONFLICT (job_id, attempt) DO UPDATE
SET worker = excluded.worker, started_at = excluded.started_at,
    finished_at = excluded.finished_at, outcome = excluded.outcome,
    error_type = excluded.error_type, error_message = excluded.error_message,
    traceback = excluded.traceback
