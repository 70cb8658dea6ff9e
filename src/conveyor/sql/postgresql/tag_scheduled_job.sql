UPDATE conveyor_jobs SET schedule = :schedule, schedule_slot = :slot WHERE id = :id
