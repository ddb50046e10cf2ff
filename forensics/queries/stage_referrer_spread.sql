-- name: stage_referrer_spread
-- purpose: The referring pages that sent people to the resource, in order of first appearance, with the first address that came from each, requests, addresses and deliveries.
-- params: (none)
-- writes: referrer_spread (append)
WITH per_referer AS (
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
),
-- The first request from each referrer (by time, then file and line), numbered among the requests
-- at its first time only: numbering every request would sort them all.
firsts AS (
    SELECT s.resource_path, s.referer, s.client_ip,
           row_number() OVER (PARTITION BY s.resource_path, s.referer ORDER BY s.source_id, s.line_no) AS n
    FROM spread_requests AS s
    JOIN per_referer AS p ON p.resource_path = s.resource_path AND p.referer = s.referer AND p.first_seen = s.ts
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
