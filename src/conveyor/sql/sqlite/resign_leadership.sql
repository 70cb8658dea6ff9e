-- Give up the leader lease of a duty, if :owner holds it, so another worker takes over at once.
DELETE FROM conveyor_leaders WHERE duty = :duty AND owner = :owner
