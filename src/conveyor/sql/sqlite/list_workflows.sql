-- The latest workflows, each with its members counted by state.
SELECT w.id, w.name, w.created_at, w.output, w.on_parent_failure, j.state, count(j.id) AS n
FROM (SELECT * FROM conveyor_workflows ORDER BY id DESC LIMIT :limit) AS w
LEFT JOIN conveyor_jobs AS j ON j.workflow = w.id
GROUP BY w.id, w.name, w.created_at, w.output, w.on_parent_failure, j.state
ORDER BY w.id DESC
