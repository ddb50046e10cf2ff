-- name: stage_crawler_fetches
-- purpose: Crawlers, archives and link-preview bots that requested the resource, with their operator and the page where the operator takes removal requests, where one is published.
-- params: (none)
-- writes: crawler_fetches (append)
-- `crawler_operators` (crawler, verifiable, operator, removal_url, removal_note, removal_source) is
-- loaded by forensics.followup from the user-agent rules and forensics/crawler_operators.toml. A
-- client is a crawler or preview bot by its user agent (ip_enrichment.client_kind). `verified` is
-- TRUE or FALSE where the operator publishes its ranges, NULL where the claim cannot be checked.
-- A claim that fails the check names no operator: the copy is with whoever holds the address.
SELECT
    d.resource_path,
    d.client_ip,
    e.client_kind,
    coalesce(e.crawler, e.client_name) AS crawler,
    CASE WHEN o.verifiable OR e.crawler_verified THEN e.crawler_verified END AS verified,
    d.outcome,
    d.first_seen,
    d.requests,
    CASE WHEN o.verifiable AND NOT e.crawler_verified THEN NULL ELSE o.operator END AS operator,
    CASE WHEN o.verifiable AND NOT e.crawler_verified THEN NULL ELSE o.removal_url END AS removal_url,
    CASE
        WHEN o.verifiable AND NOT e.crawler_verified
            THEN 'Claims to be ' || coalesce(e.crawler, e.client_name) || ', but the address is not in '
                 || coalesce(o.operator, 'the operator') || '''s published ranges: ask the network that holds it ('
                 || coalesce(e.as_org, 'unknown network') || ').'
        ELSE o.removal_note
    END AS removal_note,
    o.removal_source
FROM downloaders AS d
JOIN ip_enrichment AS e ON e.address = d.client_ip
LEFT JOIN crawler_operators AS o ON o.crawler = coalesce(e.crawler, e.client_name)
WHERE e.client_kind IN ('crawler', 'link_preview')
