UPDATE conveyor_jobs AS j SET lease_expires_at = conveyor_now() + %(lease)s
FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS held (id, token)
WHERE j.id = held.id AND j.lease_token = held.token AND j.state = 'running'
RETURNING j.id, j.cancel_requested
