-- Pause or resume. A resumed schedule starts afresh (`since` = now): slots that fell while it
-- was paused are skipped, not caught up.
UPDATE conveyor_schedules
SET paused = :paused,
    since = CASE WHEN paused AND NOT :paused THEN :now ELSE since END
WHERE name = :name
RETURNING name
