-- Nothing to do: the migration's transaction began IMMEDIATE, so migrators take turns.
SELECT 1
