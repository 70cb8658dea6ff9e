-- The jobs a job waits (or waited) for.
SELECT j.id, j.task, j.state FROM conveyor_edges AS e JOIN conveyor_jobs AS j ON j.id = e.parent
WHERE e.child = :id ORDER BY j.id
