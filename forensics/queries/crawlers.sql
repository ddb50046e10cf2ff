-- name: crawlers
-- purpose: Crawlers, archives and link-preview bots among the downloaders (they may hold a copy to ask to delete), with the crawler claimed, whether its address verifies the claim, and the user agents sent.
-- params: (none)
SELECT
    d.resource_path,
    d.client_ip,
    d.outcome,
    coalesce(e.crawler, e.client_name) AS crawler,
    e.client_kind,
    e.crawler_verified,
    e.crawler_verified_by,
    e.as_org,
    d.first_seen,
    d.user_agents
FROM downloaders d
JOIN ip_enrichment e ON e.address = d.client_ip
WHERE e.crawler IS NOT NULL OR e.client_kind IN ('crawler', 'link_preview')
ORDER BY d.resource_path,
    CASE d.outcome WHEN 'complete' THEN 1 WHEN 'partial' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END,
    d.first_seen,
    d.client_ip
