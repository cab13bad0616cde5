-- Deployment rework rate (DORA 2024) over the last 30 days: the share of production deploys that were
-- unplanned remediations (remediation hotfix or rollback).
SELECT repo,
       count(*) AS deploys,
       sum(CASE WHEN remediation IS NOT NULL THEN 1 ELSE 0 END) AS remediations,
       CAST(sum(CASE WHEN remediation IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS rate
FROM events
WHERE event IN ('deploy', 'deploy_failed')
  AND coalesce(environment, 'production') = 'production'
  AND time >= current_timestamp - INTERVAL '30' DAY
GROUP BY repo
ORDER BY repo
