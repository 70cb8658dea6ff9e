-- Every limit key with queued or running jobs: how many of each, and its rate state. Each
-- state is read along its own partial index (conveyor_jobs_limited, _running_limited).
SELECT k.task, k.limit_key, sum(k.queued) AS queued, sum(k.running) AS running, r.tat,
       :now AS now
FROM (SELECT task, limit_key, count(*) AS queued, 0 AS running
      FROM conveyor_jobs WHERE state = 'queued' AND limit_key IS NOT NULL
      GROUP BY task, limit_key
      UNION ALL
      SELECT task, limit_key, 0 AS queued, count(*) AS running
      FROM conveyor_jobs WHERE state = 'running' AND limit_key IS NOT NULL
      GROUP BY task, limit_key) AS k
LEFT JOIN conveyor_rate_limits AS r ON r.task = k.task AND r.key = k.limit_key
GROUP BY k.task, k.limit_key, r.tat
ORDER BY k.task, k.limit_key
