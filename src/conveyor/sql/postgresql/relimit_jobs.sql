-- A task gained limits (its waiting jobs without a key share the key '') or lost them (its
-- waiting jobs go back to the plain claim).
UPDATE conveyor_jobs
SET limit_key = CASE WHEN :limited::boolean THEN '' ELSE NULL END
WHERE task = :task AND state IN ('queued', 'scheduled')
  AND (limit_key IS NULL) = :limited::boolean
