SELECT count(*) AS n FROM conveyor_jobs
WHERE queue = %(queue)s AND state != 'running'
  AND (%(state)s::text IS NULL OR state = %(state)s::text)
