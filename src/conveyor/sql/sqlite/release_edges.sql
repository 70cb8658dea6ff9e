-- The ends of these parents are counted, each edge once (a retried parent's edges are set
-- back by resume_edges): the children to update.
UPDATE conveyor_edges SET done = 1
WHERE parent IN (SELECT value FROM json_each(:ids)) AND done = 0
RETURNING parent, child
