-- Ids for a batch of new jobs (a JSON array), with the database's time: :count values of the
-- jobs' identity sequence (looked up once), which never hands out an id twice.
WITH seq AS MATERIALIZED (
    SELECT pg_get_serial_sequence('conveyor_jobs', 'id')::regclass AS name
)
SELECT json_agg(nextval(seq.name))::text AS ids, :now AS now
FROM seq, generate_series(1, :count)
