-- Nothing to do: every SQLite write transaction begins IMMEDIATE, holding the write lock.
SELECT 1
