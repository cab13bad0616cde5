-- Event ids sent twice with different content (a conflict, not a resend): the view keeps the first.
SELECT event_id, count(DISTINCT digest) AS versions, min(received_at) AS first_received_at
FROM raw_events
GROUP BY event_id
HAVING count(DISTINCT digest) > 1
ORDER BY first_received_at
