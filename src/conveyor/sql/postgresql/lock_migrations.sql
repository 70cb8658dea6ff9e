-- Serialise concurrent migrators (many workers starting at once).
SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':migrate'))
