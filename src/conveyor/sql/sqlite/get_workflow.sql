SELECT id, name, created_at, jobs, output, on_parent_failure FROM conveyor_workflows
WHERE id = :id
