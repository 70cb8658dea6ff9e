INSERT INTO conveyor_edges (parent, child, done) VALUES {rows}
