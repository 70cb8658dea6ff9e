-- These jobs now have followers: their end must release them.
UPDATE conveyor_jobs SET followers = true
WHERE id = ANY(:ids::bigint[]) AND NOT followers
