UPDATE conveyor_jobs SET cancel_requested = true
WHERE workflow = :id AND state = 'running'
