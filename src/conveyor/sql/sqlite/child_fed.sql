-- (PostgreSQL builds a chord callback's input on the server. SQLite answers in-process, so
-- the store builds it in Python (dependents.fed_value) at no transfer cost; and its
-- group_concat promises no order before 3.44. No row: the store builds it.)
SELECT NULL AS id WHERE 0
