-- After a rescue: the token of the lost lease is forgotten, so the worker that lost it reads
-- "lost" (not "finished") from its next heartbeat and stops the job if it still runs it.
UPDATE conveyor_jobs SET lease_token = NULL WHERE id = :id
