-- One row per event_id: the first received (Kinesis, the KCL and Firehose deliver at least once, so the
-- raw table may hold the same event more than once). Ties (a redelivery of the very same record) are
-- broken by the content digest, so the choice never depends on file order.
SELECT event_id, time, received_at, repo, event, source, metadata, sha, before, environment, outcome,
       remediation, deployment_id, incident_id, team, service, commits, digest
FROM (
    SELECT r.*,
           row_number() OVER (PARTITION BY event_id ORDER BY received_at, digest) AS copy_number
    FROM raw_events r
) ranked
WHERE copy_number = 1
