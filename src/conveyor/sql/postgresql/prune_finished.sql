-- At most :limit jobs of one final state that ended more than :age seconds ago, oldest first
-- (the caller loops, one short transaction each, so claims never wait long behind a prune).
-- The newest job of each schedule stays: it is the schedule's last run; so does a job whose
-- children still wait. The literal state list lets the planner use the partial index on
-- finished_at.
DELETE FROM conveyor_jobs
WHERE id IN (
    SELECT old.id FROM conveyor_jobs AS old
    WHERE old.state IN ('succeeded', 'failed', 'cancelled') AND old.state = :state
      AND old.finished_at < :now - :age
      AND (old.schedule IS NULL OR old.id < (
          SELECT max(newer.id) FROM conveyor_jobs AS newer
          WHERE newer.schedule = old.schedule))
      -- A job whose result a waiting job is still to be fed stays until it was.
      AND NOT EXISTS (
          SELECT 1 FROM conveyor_edges AS e JOIN conveyor_jobs AS c ON c.id = e.child
          WHERE e.parent = old.id AND c.state = 'waiting')
    ORDER BY old.finished_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
