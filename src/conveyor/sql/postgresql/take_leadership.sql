-- Take or renew the leader lease of a singleton duty: succeeds (returns a row) only when the
-- duty has no leader, its leader's lease expired, or %(owner)s already holds it.
INSERT INTO conveyor_leaders (duty, owner, expires_at)
VALUES (%(duty)s, %(owner)s, conveyor_now() + %(ttl)s)
ON CONFLICT (duty) DO UPDATE
SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE conveyor_leaders.owner = excluded.owner OR conveyor_leaders.expires_at <= conveyor_now()
RETURNING owner
