-- Ids for a batch of new jobs (a JSON array), with the database's time: :count values of the
-- jobs' identity sequence, which never hands out an id twice.
SELECT json_agg(nextval(pg_get_serial_sequence('conveyor_jobs', 'id')))::text AS ids,
       :now AS now
FROM generate_series(1, :count)
