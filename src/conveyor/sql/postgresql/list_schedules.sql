-- Every schedule (or the one named) with its latest run (the newest job made for it, one index seek each).
SELECT s.*, j.id AS job_id, j.state AS job_state, j.schedule_slot AS job_slot,
       j.enqueued_at AS job_enqueued_at, j.finished_at AS job_finished_at
FROM conveyor_schedules AS s
LEFT JOIN conveyor_jobs AS j ON j.id = (
    SELECT max(id) FROM conveyor_jobs WHERE schedule = s.name)
WHERE CAST(:name AS TEXT) IS NULL OR s.name = :name
ORDER BY s.name
