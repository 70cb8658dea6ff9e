-- A key whose theoretical arrival time has passed is as if never used: its row can go.
DELETE FROM conveyor_rate_limits WHERE tat < :now
