-- Seconds until the next scheduled job is due (the caller adds its own clock).
SELECT min(run_at) - conveyor_now() AS wait FROM conveyor_jobs WHERE state = 'scheduled'
