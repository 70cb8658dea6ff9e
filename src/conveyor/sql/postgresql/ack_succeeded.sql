-- Many successes in one statement; returns the ids whose lease still matched.
UPDATE conveyor_jobs AS j
SET state = 'succeeded', result = done.result, error = NULL, finished_at = conveyor_now(),
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[], %(results)s::text[])
     AS done (id, token, result)
WHERE j.id = done.id AND j.lease_token = done.token AND j.state = 'running'
RETURNING j.id
