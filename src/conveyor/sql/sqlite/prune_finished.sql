DELETE FROM conveyor_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < :now - :older_than
