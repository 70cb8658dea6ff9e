-- Ids for a batch of new jobs (a JSON array), with the database's time: :count consecutive
-- ids above every id ever handed out (see raise_id_floor). Inside the batch's write
-- transaction, so nobody else takes them meanwhile.
WITH RECURSIVE ids (id) AS (
    SELECT max(coalesce((SELECT max(id) FROM conveyor_jobs), 0),
               (SELECT floor FROM conveyor_id_floor)) + 1
    UNION ALL
    SELECT id + 1 FROM ids LIMIT :count
)
SELECT json_group_array(id) AS ids, :now AS now FROM ids
