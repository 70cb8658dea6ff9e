-- At most :limit slot rows older than :older_than seconds; never the newest of a schedule,
-- which its scheduler reads to know where it is.
DELETE FROM conveyor_schedule_slots
WHERE (schedule, slot) IN (
    SELECT old.schedule, old.slot FROM conveyor_schedule_slots AS old
    WHERE old.slot < :now - :older_than
      AND old.slot < (
          SELECT max(newer.slot) FROM conveyor_schedule_slots AS newer
          WHERE newer.schedule = old.schedule)
    LIMIT :limit
)
