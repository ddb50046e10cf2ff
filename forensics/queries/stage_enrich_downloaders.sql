-- name: stage_enrich_downloaders
-- purpose: Copy each client's enrichment (location, network, client kind) onto its downloader rows and add the enrichment flags to the investigation's flags.
-- params: (none)
UPDATE downloaders AS d
SET country = e.country,
    country_name = e.country_name,
    city = e.city,
    asn = e.asn,
    as_org = e.as_org,
    client_kind = e.client_kind,
    client_name = e.client_name,
    cloud_provider = e.cloud_provider,
    crawler = e.crawler,
    crawler_verified = e.crawler_verified,
    tor_exit = e.tor_exit,
    vpn = e.vpn,
    hosting = e.hosting,
    flags = list_distinct(list_concat(coalesce(d.flags, []::VARCHAR[]), coalesce(e.flags, []::VARCHAR[])))
FROM ip_enrichment AS e
WHERE e.address = d.client_ip
