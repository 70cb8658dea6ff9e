-- Run once per update of a batch. Fenced by the lease token.
UPDATE conveyor_jobs SET progress = :progress
WHERE id = :id AND lease_token = :token AND state = 'running'
