-- Give up the leader lease of a duty, if %(owner)s holds it, so another worker takes over at
-- once.
DELETE FROM conveyor_leaders WHERE duty = %(duty)s AND owner = %(owner)s
