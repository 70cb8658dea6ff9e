-- These jobs now have followers: their end must release them.
UPDATE conveyor_jobs SET followers = 1
WHERE id IN (SELECT value FROM json_each(:ids)) AND NOT followers
