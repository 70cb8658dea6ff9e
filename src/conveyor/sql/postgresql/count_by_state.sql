SELECT queue, state, count(*) AS n FROM conveyor_jobs GROUP BY queue, state
