-- Take a schedule's slot; no row back when another scheduler took it first (its job is
-- enqueued in the same transaction, so a taken slot always has its job).
INSERT INTO conveyor_schedule_slots (schedule, slot, taken_at)
VALUES (:schedule, :slot, :now)
ON CONFLICT DO NOTHING
RETURNING slot
