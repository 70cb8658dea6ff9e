-- Keys whose theoretical arrival time has passed are as if never used: their rows go, at
-- most :limit at a time. The outer condition is checked again on the row as it is deleted,
-- so a key a claim has just moved on (a committed update meanwhile) is kept.
DELETE FROM conveyor_rate_limits
WHERE tat < :now
  AND (task, key) IN (SELECT task, key FROM conveyor_rate_limits WHERE tat < :now
                      LIMIT :limit)
