INSERT INTO conveyor_workflows (name, created_at, output, on_parent_failure)
VALUES (:name, :now, '[]', :on_parent_failure)
RETURNING id
