-- Failed deployment recovery time over the last 30 days: from each failed production deploy to the first
-- service_restored of the same repository at or after it; median and sample count per repository.
WITH failures AS (
    SELECT repo, event_id, time AS failed_at
    FROM events
    WHERE event IN ('deploy', 'deploy_failed')
      AND outcome = 'failure'
      AND coalesce(environment, 'production') = 'production'
),
samples AS (
    SELECT f.repo, f.event_id, date_diff('second', f.failed_at, min(r.time)) AS recovery_s,
           min(r.time) AS restored_at
    FROM failures f
    JOIN events r ON r.repo = f.repo AND r.event = 'service_restored'
         AND coalesce(r.environment, 'production') = 'production' AND r.time >= f.failed_at
    GROUP BY f.repo, f.event_id, f.failed_at
),
ranked AS (
    SELECT repo, recovery_s,
           row_number() OVER (PARTITION BY repo ORDER BY recovery_s) AS position,
           count(*) OVER (PARTITION BY repo) AS samples
    FROM samples
    WHERE restored_at >= current_timestamp - INTERVAL '30' DAY
)
SELECT repo, samples, avg(recovery_s) AS median_s
FROM ranked
WHERE position IN (CAST(floor((samples + 1) / 2.0) AS BIGINT), CAST(floor((samples + 2) / 2.0) AS BIGINT))
GROUP BY repo, samples
ORDER BY repo
