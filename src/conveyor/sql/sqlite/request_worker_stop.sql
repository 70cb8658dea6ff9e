UPDATE conveyor_workers SET stop_requested = 1 WHERE :name IS NULL OR name = :name
