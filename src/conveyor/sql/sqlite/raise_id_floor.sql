-- Run in the same transaction before any DELETE of jobs, so deleted ids are never reused.
UPDATE conveyor_id_floor
SET floor = max(floor, coalesce((SELECT max(id) FROM conveyor_jobs), 0))
