-- name: networks
-- purpose: Downloaders per network (autonomous system) and kind of network (Tor, VPN, cloud, hosting, crawler, or an ordinary access network), with the count per outcome.
-- params: (none)
SELECT
    d.resource_path,
    e.asn,
    coalesce(e.as_org, 'unknown') AS as_org,
    CASE
        WHEN e.tor_exit OR e.tor THEN 'tor'
        WHEN e.vpn OR e.anonymous OR e.public_proxy OR e.residential_proxy THEN 'vpn_or_proxy'
        WHEN e.crawler_verified THEN 'crawler'
        WHEN e.cloud_provider IS NOT NULL THEN 'cloud'
        WHEN e.hosting THEN 'hosting'
        WHEN e.asn IS NOT NULL THEN 'access_network'
        ELSE 'unknown'
    END AS network_kind,
    any_value(e.cloud_provider) AS cloud_provider,
    count(*) AS clients,
    count(*) FILTER (WHERE d.outcome = 'complete') AS complete,
    count(*) FILTER (WHERE d.outcome = 'partial') AS partial,
    count(*) FILTER (WHERE d.outcome = 'failed') AS failed,
    count(*) FILTER (WHERE d.outcome = 'headers_only') AS headers_only
FROM downloaders d
LEFT JOIN ip_enrichment e ON e.address = d.client_ip
GROUP BY ALL
ORDER BY d.resource_path, complete DESC, clients DESC, as_org
