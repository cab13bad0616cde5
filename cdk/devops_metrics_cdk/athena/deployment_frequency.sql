-- Deployment frequency over the last 30 days: successful production deploys per repository, per day.
-- Production = environment unset or 'production'.
SELECT repo,
       count(*) AS deploys,
       CAST(count(*) AS DOUBLE) / 30 AS per_day
FROM events
WHERE event IN ('deploy', 'deploy_failed')
  AND outcome = 'success'
  AND coalesce(environment, 'production') = 'production'
  AND time >= current_timestamp - INTERVAL '30' DAY
GROUP BY repo
ORDER BY repo
