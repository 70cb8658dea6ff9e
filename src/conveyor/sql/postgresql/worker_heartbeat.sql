UPDATE conveyor_workers SET heartbeat_at = :now, busy = :busy
WHERE name = :name
RETURNING stop_requested
