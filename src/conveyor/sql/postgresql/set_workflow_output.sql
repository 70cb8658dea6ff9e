UPDATE conveyor_workflows SET output = :output WHERE id = :id
