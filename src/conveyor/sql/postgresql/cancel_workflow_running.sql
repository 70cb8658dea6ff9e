-- (`state || ''`: not answered from the running jobs' index; see ack_succeeded.)
UPDATE conveyor_jobs SET cancel_requested = true
WHERE workflow = :id AND state || '' = 'running'
