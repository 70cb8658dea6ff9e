INSERT INTO conveyor_edges (parent, child, done)
SELECT * FROM unnest(:parent::bigint[], :child::bigint[], :done::boolean[])
