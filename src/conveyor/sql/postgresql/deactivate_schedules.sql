-- Schedules gone from the code: kept for their history, never fired again.
UPDATE conveyor_schedules SET active = false, synced_by = :worker, synced_at = :now
WHERE active AND name NOT IN (SELECT unnest(:names::text[]))
RETURNING name
