-- Take or renew the leader lease of a singleton duty: succeeds (returns a row) only when the
-- duty has no leader, its leader's lease expired, or :owner already holds it.
INSERT INTO conveyor_leaders (duty, owner, expires_at) VALUES (:duty, :owner, :now + :ttl)
ON CONFLICT (duty) DO UPDATE
SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE conveyor_leaders.owner = excluded.owner OR conveyor_leaders.expires_at <= :now
RETURNING owner
