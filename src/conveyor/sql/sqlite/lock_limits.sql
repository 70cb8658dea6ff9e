-- Limited claims are serialized: on SQLite every write transaction already holds the one
-- write lock (BEGIN IMMEDIATE), so there is nothing more to take.
SELECT 1 AS locked
