-- A child's parents: which ended, and how.
SELECT e.parent, e.done, j.state
FROM conveyor_edges AS e JOIN conveyor_jobs AS j ON j.id = e.parent
WHERE e.child = :id
ORDER BY e.parent
