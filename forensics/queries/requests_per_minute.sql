-- name: requests_per_minute
-- purpose: Requests per minute and log role, with how many of them were for a leaked resource (counted once) and how many distinct addresses were logged; optionally between two times.
-- params: start (optional: ISO 8601 time), end (optional: ISO 8601 time)
SELECT
    time_bucket(INTERVAL 1 MINUTE, r.ts) AS minute,
    s.role,
    count(*) AS requests,
    count(h.line_no) FILTER (WHERE h.counts) AS resource_requests,
    count(DISTINCT r.client_addr) AS logged_addresses
FROM requests r
JOIN sources s USING (source_id)
LEFT JOIN hits h ON h.source_id = r.source_id AND h.line_no = r.line_no
WHERE ($start::VARCHAR IS NULL OR r.ts >= $start::VARCHAR::TIMESTAMPTZ)
  AND ($end::VARCHAR IS NULL OR r.ts < $end::VARCHAR::TIMESTAMPTZ)
GROUP BY ALL
ORDER BY minute, s.role
