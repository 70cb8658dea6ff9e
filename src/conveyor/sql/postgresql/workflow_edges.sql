-- Every edge between members of a workflow.
SELECT e.parent, e.child FROM conveyor_edges AS e
JOIN conveyor_jobs AS j ON j.id = e.child
WHERE j.workflow = :id
ORDER BY e.child, e.parent
