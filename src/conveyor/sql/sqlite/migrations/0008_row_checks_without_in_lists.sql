-- The same conditions, written so that checking a row is cheap. SQLite checks a CHECK
-- constraint and every partial index's WHERE on each row a statement writes, and there an IN
-- list of more than two values is rebuilt as a temporary table for every row (in a query it is
-- built once). A claim and an ack of a no-op job spent a third of their instructions on it.
-- As OR chains they are plain comparisons. (A query's own IN list is built once; the planner
-- still matches prune_finished's list of states to the OR chain of conveyor_jobs_finished.)

-- The CHECK is edited in place, as 0007 did; the text is the one 0001 wrote and 0007 edited.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql, 'CHECK (state IN
                         (''scheduled'', ''queued'', ''running'', ''succeeded'', ''failed'', ''cancelled'', ''waiting''))',
                  'CHECK (state = ''scheduled'' OR state = ''queued'' OR state = ''running''
                         OR state = ''succeeded'' OR state = ''failed'' OR state = ''cancelled''
                         OR state = ''waiting'')')
WHERE type = 'table' AND name = 'conveyor_jobs';
PRAGMA writable_schema = OFF;

DROP INDEX conveyor_jobs_finished;
CREATE INDEX conveyor_jobs_finished ON conveyor_jobs (finished_at)
    WHERE state = 'succeeded' OR state = 'failed' OR state = 'cancelled';

DROP INDEX conveyor_jobs_unique_key;
CREATE UNIQUE INDEX conveyor_jobs_unique_key ON conveyor_jobs (unique_key)
    WHERE unique_key IS NOT NULL
      AND (state = 'waiting' OR state = 'scheduled' OR state = 'queued' OR state = 'running');
