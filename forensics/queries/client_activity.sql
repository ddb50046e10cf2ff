-- name: client_activity
-- purpose: Everything one address did on the site in the logs: every request it made directly, at the CDN edge, or behind a proxy that named it in X-Forwarded-For, in time order, with the resource's requests marked.
-- params: client_ip
SELECT
    r.ts,
    s.role,
    s.path AS source_file,
    r.line_no,
    r.client_addr,
    r.xff,
    r.method,
    r.host,
    r.path,
    r.query,
    r.status,
    r.body_bytes,
    r.range_start,
    r.range_end,
    r.cache_status,
    r.edge_location,
    r.referer,
    r.user_agent,
    h.resource_path IS NOT NULL AS is_resource,
    h.window_position,
    h.counts AS counted
FROM requests r
JOIN sources s USING (source_id)
LEFT JOIN hits h ON h.source_id = r.source_id AND h.line_no = r.line_no
WHERE lower(r.client_addr) = lower($client_ip::VARCHAR)
   OR lower(h.client_ip) = lower($client_ip::VARCHAR)
   OR list_contains(
        list_transform(string_split(coalesce(r.xff, ''), ','), lambda x: lower(trim(x))),
        lower($client_ip::VARCHAR))
ORDER BY r.ts, s.role, r.source_id, r.line_no
