SELECT * FROM conveyor_attempts WHERE job_id = :job_id ORDER BY attempt
