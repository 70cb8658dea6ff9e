-- Keys whose theoretical arrival time has passed are as if never used: their rows go, at
-- most :limit at a time.
DELETE FROM conveyor_rate_limits
WHERE (task, key) IN (SELECT task, key FROM conveyor_rate_limits WHERE tat < :now
                      LIMIT :limit)
