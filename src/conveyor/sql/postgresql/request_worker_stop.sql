UPDATE conveyor_workers SET stop_requested = true
WHERE %(name)s::text IS NULL OR name = %(name)s::text
