-- The parent runs again (an admin retry): its end is to be counted again.
UPDATE conveyor_edges SET done = false WHERE parent = :parent AND child = :child AND done
