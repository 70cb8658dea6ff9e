-- Workflows whose every member was pruned (a minute after they were made, so one being
-- enqueued is never taken for empty).
DELETE FROM conveyor_workflows
WHERE id IN (SELECT w.id FROM conveyor_workflows AS w
             WHERE w.created_at < :now - 60
               AND NOT EXISTS (SELECT 1 FROM conveyor_jobs AS j WHERE j.workflow = w.id)
             LIMIT :limit)
