-- The last id handed out: the table's highest, or a higher one that was deleted.
SELECT max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
           (SELECT floor FROM conveyor_id_floor)) AS last_id
