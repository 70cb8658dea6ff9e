SELECT * FROM conveyor_attempts WHERE job_id = %(job_id)s ORDER BY attempt
