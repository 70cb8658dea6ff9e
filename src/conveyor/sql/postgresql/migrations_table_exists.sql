SELECT to_regclass('conveyor_migrations') IS NOT NULL AS present
