UPDATE conveyor_jobs SET pending_parents = :pending
WHERE id = :id AND state = 'waiting'
RETURNING id
