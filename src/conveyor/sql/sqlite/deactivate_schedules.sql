-- Schedules gone from the code: kept for their history, never fired again.
UPDATE conveyor_schedules SET active = 0, synced_by = :worker, synced_at = :now
WHERE active AND name NOT IN (SELECT value FROM json_each(:names))
RETURNING name
