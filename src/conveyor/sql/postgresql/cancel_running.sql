UPDATE conveyor_jobs SET cancel_requested = true
WHERE id = :id AND state = 'running'
