UPDATE conveyor_jobs SET workflow = :id WHERE id IN (SELECT value FROM json_each(:ids))
