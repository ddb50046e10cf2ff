-- name: stage_spread_requests
-- purpose: Every counted request for the resource in the exposure window and margin, with its referring site and who sent it (the agency, a crawler or preview bot, an outsider): the rows the spread of the link is told from.
-- params: (none)
-- writes: spread_requests (append)
-- `client_facts` (client_ip, ipv6_prefix, agency) and `agency_sites` (site) are written by
-- forensics.followup: the addresses in the case's [agency] networks, and the resource's hosts with
-- the [agency] sites. Rules:
--   referer_host  the host of the Referer URL (scheme://host...), lower case;
--   referer_site  that host without a leading "www."; '(none)' without a Referer;
--   referer_kind  agency when the host (or the host without www.) is an agency site, else external;
--   client_party  agency (address in [agency] networks), crawler (the enrichment's client kind is
--                 crawler or link_preview, from the user agent), else outsider;
--   delivered     a GET answered 200, 206, 000 or 499 with a body: bytes of the file left the server.
-- Portable subset: regexp_extract(text, pattern, group) and regexp_replace as in DuckDB and Spark.
WITH counted AS (
    SELECT
        h.resource_path, h.ts, h.client_ip, h.source_id, h.line_no,
        upper(r.method) AS method, r.status,
        upper(r.method) <> 'HEAD' AND r.status IN (200, 206, 0, 499)
            AND coalesce(r.body_bytes, r.total_bytes, 0) > 0 AS delivered,
        CASE WHEN r.referer IS NULL OR r.referer IN ('', '-') THEN NULL ELSE r.referer END AS referer
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.counts AND h.window_position IN ('exposure', 'margin')
),
hosts AS (
    SELECT c.*,
           lower(regexp_extract(c.referer, '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#:]+)', 1)) AS referer_host
    FROM counted AS c
)
SELECT
    h.resource_path,
    h.ts,
    h.client_ip,
    h.source_id,
    h.line_no,
    h.method,
    h.status,
    h.delivered,
    coalesce(h.referer, '(none)') AS referer,
    h.referer_host,
    CASE
        WHEN h.referer IS NULL THEN '(none)'
        WHEN h.referer_host IS NULL OR h.referer_host = '' THEN h.referer
        ELSE regexp_replace(h.referer_host, '^www\.', '')
    END AS referer_site,
    CASE
        WHEN h.referer IS NULL THEN 'none'
        WHEN h.referer_host IN (SELECT site FROM agency_sites)
          OR regexp_replace(h.referer_host, '^www\.', '')
             IN (SELECT regexp_replace(site, '^www\.', '') FROM agency_sites) THEN 'agency'
        ELSE 'external'
    END AS referer_kind,
    CASE
        WHEN f.agency THEN 'agency'
        WHEN e.client_kind IN ('crawler', 'link_preview') THEN 'crawler'
        ELSE 'outsider'
    END AS client_party
FROM hosts AS h
LEFT JOIN client_facts AS f ON f.client_ip = h.client_ip
LEFT JOIN ip_enrichment AS e ON e.address = h.client_ip
