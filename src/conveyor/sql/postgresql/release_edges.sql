-- The ends of these parents are counted, each edge once (a retried parent's edges are set
-- back by resume_edges): the children to update.
UPDATE conveyor_edges SET done = true
WHERE parent = ANY(:ids::bigint[]) AND NOT done
RETURNING parent, child
