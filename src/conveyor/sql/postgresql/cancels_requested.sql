-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
SELECT id FROM conveyor_jobs
WHERE id IN (SELECT unnest(:ids::bigint[])) AND state || '' = 'running' AND cancel_requested
