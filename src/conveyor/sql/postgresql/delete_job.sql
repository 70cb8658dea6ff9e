-- A running job is never deleted under its worker: cancel it first.
DELETE FROM conveyor_jobs WHERE id = :id AND state != 'running'
