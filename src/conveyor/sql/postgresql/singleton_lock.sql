-- One worker at a time does a singleton duty (rescue), per schema; released at commit.
SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || ':' || %(duty)s)) AS locked
