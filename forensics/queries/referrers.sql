-- name: referrers
-- purpose: How people arrived at the leaked resource: each Referer sent with a counted request in the window and margin, with requests, clients and first and last time.
-- params: (none)
SELECT
    h.resource_path,
    coalesce(nullif(r.referer, '-'), '(none)') AS referer,
    count(*) AS requests,
    count(DISTINCT h.client_ip) AS clients,
    min(h.ts) AS first_seen,
    max(h.ts) AS last_seen
FROM hits h
JOIN hit_requests r ON r.source_id = h.source_id AND r.line_no = h.line_no
WHERE h.counts AND h.window_position <> 'outside'
GROUP BY ALL
ORDER BY h.resource_path, clients DESC, requests DESC, referer
