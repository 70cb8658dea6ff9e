-- The jobs that wait (or waited) for a job, its callbacks included.
SELECT j.id, j.task, j.state FROM conveyor_edges AS e JOIN conveyor_jobs AS j ON j.id = e.child
WHERE e.parent = :id ORDER BY j.id
