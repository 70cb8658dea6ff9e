-- The jobs a worker holds a lease on, as the database knows them: after a round whose reply
-- was lost (it may have committed), the worker compares them with those it knows it holds.
SELECT id, lease_token FROM conveyor_jobs
WHERE state = 'running' AND lease_owner = :owner
