-- Seconds until the first scheduled job of the queues in %(queues)s is due (the caller adds
-- its own clock). Walks the scheduled jobs in run_at order and stops at the first one of these
-- queues.
SELECT run_at - conveyor_now() AS wait FROM conveyor_jobs
WHERE state = 'scheduled' AND queue = ANY(%(queues)s::text[])
ORDER BY run_at
LIMIT 1
