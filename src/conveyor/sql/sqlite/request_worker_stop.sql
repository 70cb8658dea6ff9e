UPDATE conveyor_workers SET stop_requested = true
WHERE CAST(:name AS TEXT) IS NULL OR name = :name
