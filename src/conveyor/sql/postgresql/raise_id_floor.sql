-- Nothing to do: ids come from an identity column, which never hands out an id twice.
SELECT 1
