-- Change lead time over the last 30 days: for each successful production deploy of a sha, the time from
-- the earliest push of that sha (same repository) to the deploy; median and sample count per repository.
WITH pushes AS (
    SELECT repo, sha, min(time) AS pushed_at
    FROM events
    WHERE event = 'push' AND sha IS NOT NULL
    GROUP BY repo, sha
),
samples AS (
    SELECT d.repo, date_diff('second', p.pushed_at, d.time) AS lead_s
    FROM events d
    JOIN pushes p ON p.repo = d.repo AND p.sha = d.sha
    WHERE d.event IN ('deploy', 'deploy_failed')
      AND d.outcome = 'success'
      AND coalesce(d.environment, 'production') = 'production'
      AND d.time >= current_timestamp - INTERVAL '30' DAY
      AND p.pushed_at <= d.time
),
ranked AS (
    SELECT repo, lead_s,
           row_number() OVER (PARTITION BY repo ORDER BY lead_s) AS position,
           count(*) OVER (PARTITION BY repo) AS samples
    FROM samples
)
SELECT repo, samples, avg(lead_s) AS median_s
FROM ranked
WHERE position IN (CAST(floor((samples + 1) / 2.0) AS BIGINT), CAST(floor((samples + 2) / 2.0) AS BIGINT))
GROUP BY repo, samples
ORDER BY repo
