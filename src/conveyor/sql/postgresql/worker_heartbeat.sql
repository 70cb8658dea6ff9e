UPDATE conveyor_workers SET heartbeat_at = conveyor_now(), busy = %(busy)s
WHERE name = %(name)s
RETURNING stop_requested
