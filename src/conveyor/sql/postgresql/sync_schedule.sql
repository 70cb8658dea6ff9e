-- A schedule as the code declares it. A new one, one whose timing changed and one coming back
-- from inactive start afresh (`since` = now): a new expression takes effect from its next
-- slot, and no slot of the old one is caught up. Pausing is the operator's: kept.
INSERT INTO conveyor_schedules
    (name, task, cron, every, tz, args, kwargs, catch_up, max_lateness, active, paused, since,
     synced_by, synced_at)
VALUES (:name, :task, :cron, :every, :tz, :args, :kwargs, :catch_up, :max_lateness, true, false,
        :now, :worker, :now)
ON CONFLICT (name) DO UPDATE
SET task = excluded.task, args = excluded.args, kwargs = excluded.kwargs,
    catch_up = excluded.catch_up, max_lateness = excluded.max_lateness,
    since = CASE WHEN NOT conveyor_schedules.active
                   OR conveyor_schedules.cron IS DISTINCT FROM excluded.cron
                   OR conveyor_schedules.every IS DISTINCT FROM excluded.every
                   OR conveyor_schedules.tz IS DISTINCT FROM excluded.tz
                 THEN excluded.since ELSE conveyor_schedules.since END,
    cron = excluded.cron, every = excluded.every, tz = excluded.tz, active = true,
    synced_by = excluded.synced_by, synced_at = excluded.synced_at
