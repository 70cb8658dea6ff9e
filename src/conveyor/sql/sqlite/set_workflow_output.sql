UPDATE conveyor_workflows SET output = :output, jobs = :jobs WHERE id = :id
