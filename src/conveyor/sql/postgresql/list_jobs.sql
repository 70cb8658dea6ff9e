SELECT * FROM conveyor_jobs
WHERE (CAST(:state AS TEXT) IS NULL OR state = :state)
  AND (CAST(:queue AS TEXT) IS NULL OR queue = :queue)
  AND (CAST(:task AS TEXT) IS NULL OR task = :task)
ORDER BY id DESC
LIMIT :limit
