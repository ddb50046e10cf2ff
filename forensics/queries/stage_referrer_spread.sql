-- name: stage_referrer_spread
-- purpose: The referring pages that sent people to the resource, in order of first appearance, with the first address that came from each, requests, addresses and deliveries.
-- params: (none)
-- writes: referrer_spread (append)
WITH firsts AS (
    SELECT resource_path, referer, client_ip,
           row_number() OVER (PARTITION BY resource_path, referer ORDER BY ts, source_id, line_no) AS n
    FROM spread_requests
),
per_referer AS (
    SELECT resource_path, referer,
           min(referer_site) AS referer_site,
           min(referer_kind) AS referer_kind,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(DISTINCT client_ip) AS clients,
           sum(CASE WHEN delivered THEN 1 ELSE 0 END) AS deliveries
    FROM spread_requests
    GROUP BY resource_path, referer
)
SELECT
    p.resource_path,
    row_number() OVER (PARTITION BY p.resource_path ORDER BY p.first_seen, p.referer) AS appearance,
    p.referer,
    p.referer_site,
    p.referer_kind,
    p.first_seen,
    p.last_seen,
    f.client_ip AS first_client,
    p.requests,
    p.clients,
    p.deliveries
FROM per_referer AS p
JOIN firsts AS f ON f.resource_path = p.resource_path AND f.referer = p.referer AND f.n = 1
