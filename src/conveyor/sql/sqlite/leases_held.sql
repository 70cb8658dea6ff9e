-- The jobs a worker holds a lease on, as the database knows them, claimed (by this host's
-- clock) from :since on: after a round whose reply was lost (it may have committed), the
-- worker compares them with those it knows it holds. (An earlier process of the same name
-- claimed before :since: its jobs are the rescuer's, their attempt counted.)
SELECT id, lease_token FROM conveyor_jobs
WHERE state = 'running' AND lease_owner = :owner AND started_at >= :since
