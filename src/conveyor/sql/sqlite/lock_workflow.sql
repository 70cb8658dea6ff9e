-- (SQLite: the write transaction holds the database's one write lock already.)
SELECT id FROM conveyor_jobs WHERE workflow = :id ORDER BY id
