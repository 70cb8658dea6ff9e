-- What a scheduler needs to fire: each active schedule and where it is (its latest slot taken,
-- one index seek each), and the database's clock, by which slots are due.
SELECT s.name, s.task, s.cron, s.every, s.tz, s.args, s.kwargs, s.catch_up, s.max_lateness,
       s.paused, s.since,
       (SELECT max(slot) FROM conveyor_schedule_slots WHERE schedule = s.name) AS last_slot,
       :now AS now
FROM conveyor_schedules AS s
WHERE s.active
ORDER BY s.name
