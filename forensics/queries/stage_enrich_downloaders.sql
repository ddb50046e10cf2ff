-- name: stage_enrich_downloaders
-- purpose: The downloaders with each client's enrichment (location, network, client kind) and the enrichment flags added to the investigation's flags.
-- params: (none)
-- writes: downloaders (replace)
-- A downloader whose address has no enrichment row keeps what it had. Flags: the investigation's
-- and the enrichment's vocabularies share no word, so the two lists are joined without a distinct
-- (whose order differs between engines), most recent first: the enrichment's in reverse of the
-- order it gives them, then the investigation's in reverse alphabetical order, as earlier case
-- folders show them.
SELECT
    d.resource_path, d.client_ip, d.outcome, d.confidence, d.first_seen, d.last_seen, d.requests,
    d.bytes_received, d.file_bytes_covered, d.coverage_pct, d.resource_size, d.outcome_reason, d.statuses,
    d.user_agents, d.referers, d.sources, d.claimed_forwarded_for,
    CASE WHEN e.address IS NULL THEN d.flags
         ELSE list_reverse(list_concat(coalesce(d.flags, []::VARCHAR[]), coalesce(e.flags, []::VARCHAR[])))
    END AS flags,
    CASE WHEN e.address IS NULL THEN d.country ELSE e.country END AS country,
    CASE WHEN e.address IS NULL THEN d.country_name ELSE e.country_name END AS country_name,
    CASE WHEN e.address IS NULL THEN d.city ELSE e.city END AS city,
    CASE WHEN e.address IS NULL THEN d.asn ELSE e.asn END AS asn,
    CASE WHEN e.address IS NULL THEN d.as_org ELSE e.as_org END AS as_org,
    CASE WHEN e.address IS NULL THEN d.client_kind ELSE e.client_kind END AS client_kind,
    CASE WHEN e.address IS NULL THEN d.client_name ELSE e.client_name END AS client_name,
    CASE WHEN e.address IS NULL THEN d.cloud_provider ELSE e.cloud_provider END AS cloud_provider,
    CASE WHEN e.address IS NULL THEN d.crawler ELSE e.crawler END AS crawler,
    CASE WHEN e.address IS NULL THEN d.crawler_verified ELSE e.crawler_verified END AS crawler_verified,
    CASE WHEN e.address IS NULL THEN d.tor_exit ELSE e.tor_exit END AS tor_exit,
    CASE WHEN e.address IS NULL THEN d.vpn ELSE e.vpn END AS vpn,
    CASE WHEN e.address IS NULL THEN d.hosting ELSE e.hosting END AS hosting
FROM downloaders AS d
LEFT JOIN ip_enrichment AS e ON e.address = d.client_ip
