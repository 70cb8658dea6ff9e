-- What prune_finished would delete, all batches together (a dry run).
SELECT count(*) AS n FROM conveyor_jobs AS old
WHERE old.state IN ('succeeded', 'failed', 'cancelled') AND old.state = :state
  AND old.finished_at < :now - :age
  AND (old.schedule IS NULL OR old.id < (
      SELECT max(newer.id) FROM conveyor_jobs AS newer
      WHERE newer.schedule = old.schedule))
  -- A job whose result a waiting job is still to be fed stays until it was.
  AND NOT EXISTS (
      SELECT 1 FROM conveyor_edges AS e JOIN conveyor_jobs AS c ON c.id = e.child
      WHERE e.parent = old.id AND c.state = 'waiting')
