-- A parent's children, with what resuming the parent (an admin retry) needs of each.
SELECT e.child, e.done, j.state, j.error, j.pending_parents
FROM conveyor_edges AS e JOIN conveyor_jobs AS j ON j.id = e.child
WHERE e.parent = :id
ORDER BY e.child
