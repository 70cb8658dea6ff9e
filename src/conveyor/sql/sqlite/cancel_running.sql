UPDATE conveyor_jobs SET cancel_requested = 1
WHERE id = :id AND state = 'running'
