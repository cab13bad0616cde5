-- Change fail rate over the last 30 days: the share of production deploys whose outcome is failure.
SELECT repo,
       count(*) AS deploys,
       sum(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END) AS failures,
       CAST(sum(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS rate
FROM events
WHERE event IN ('deploy', 'deploy_failed')
  AND coalesce(environment, 'production') = 'production'
  AND time >= current_timestamp - INTERVAL '30' DAY
GROUP BY repo
ORDER BY repo
