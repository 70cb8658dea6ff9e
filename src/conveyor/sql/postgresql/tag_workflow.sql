UPDATE conveyor_jobs SET workflow = :id WHERE id = ANY(:ids::bigint[])
