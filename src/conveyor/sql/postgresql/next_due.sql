-- Seconds until the next scheduled job is due, by the database's clock (the caller adds its
-- own clock: hosts may disagree about the time, durations they agree on).
SELECT min(run_at) - :now AS wait FROM conveyor_jobs WHERE state = 'scheduled'
