-- A job with parents, queued again by an admin retry, gets what they fed it.
UPDATE conveyor_jobs SET args = :args WHERE id = :id
