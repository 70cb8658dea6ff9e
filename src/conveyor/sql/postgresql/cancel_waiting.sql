UPDATE conveyor_jobs
SET state = 'cancelled', finished_at = conveyor_now(), cancel_requested = true
WHERE id = %(id)s AND state IN ('scheduled', 'queued')
