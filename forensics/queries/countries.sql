-- name: countries
-- purpose: Downloaders per country of their address (from the IP databases; 'unknown' where none was given or it had no answer), with the count per outcome.
-- params: (none)
SELECT
    d.resource_path,
    coalesce(e.country, 'unknown') AS country,
    any_value(e.country_name) AS country_name,
    count(*) AS clients,
    count(*) FILTER (WHERE d.outcome = 'complete') AS complete,
    count(*) FILTER (WHERE d.outcome = 'partial') AS partial,
    count(*) FILTER (WHERE d.outcome = 'failed') AS failed,
    count(*) FILTER (WHERE d.outcome = 'headers_only') AS headers_only
FROM downloaders d
LEFT JOIN ip_enrichment e ON e.address = d.client_ip
GROUP BY ALL
ORDER BY d.resource_path, complete DESC, clients DESC, country
