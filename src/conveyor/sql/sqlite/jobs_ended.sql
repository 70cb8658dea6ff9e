-- What the end of these jobs gives their followers: state, result, error, callbacks.
SELECT id, state, result, error, callbacks FROM conveyor_jobs
WHERE id IN (SELECT value FROM json_each(:ids))
