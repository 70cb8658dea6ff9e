-- What prune_finished would delete, all batches together (a dry run).
SELECT count(*) AS n FROM conveyor_jobs AS old
WHERE old.state IN ('succeeded', 'failed', 'cancelled') AND old.state = :state
  AND old.finished_at < :now - :age
  AND (old.schedule IS NULL OR old.id < (
      SELECT max(newer.id) FROM conveyor_jobs AS newer
      WHERE newer.schedule = old.schedule))
