UPDATE conveyor_jobs SET progress = %(progress)s
WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
