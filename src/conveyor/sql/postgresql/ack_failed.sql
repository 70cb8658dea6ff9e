UPDATE conveyor_jobs
SET state = 'failed', error = %(error)s, finished_at = conveyor_now(),
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
