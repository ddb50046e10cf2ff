-- name: stage_operator_requests
-- purpose: One row per counted request of every downloader with what a network operator needs to identify the subscriber: address, client port where logged, UTC time and its precision, outcome, and the log line (file, line number, SHA-256); grouped by operator through the IP databases' ASN.
-- params: (none)
-- writes: operator_requests (append)
-- Rules:
--   - Only counted requests (a request seen at edge and origin is the edge line) in the exposure
--     window and margin, of clients with an address; an unknown client gives an operator nothing.
--   - The port is the client's only where the line names the client directly (a CDN viewer or a
--     direct peer). Behind a trusted proxy the logged port is the proxy's, so it is left NULL.
--   - A source logs fractions of a second when any of its lines for the resource has one; its times
--     are then given to the millisecond, otherwise to the second (a whole-second log cannot say more).
--   - port_logged: the source's lines for the resource carry a port at all.
--   - Both facts are read from `hit_requests`, which holds the requests rows of the hits (a hit's
--     time is its request's), without joining them to `hits` again.
-- Portable subset: joins, GROUP BY, CASE; date_trunc as in DuckDB and Spark.
WITH source_facts AS (
    SELECT
        r.source_id,
        max(CASE WHEN r.ts <> date_trunc('second', r.ts) THEN 1 ELSE 0 END) AS has_fractions,
        max(CASE WHEN r.client_port IS NOT NULL THEN 1 ELSE 0 END) AS has_ports
    FROM hit_requests AS r
    GROUP BY r.source_id
)
SELECT
    h.resource_path,
    e.asn,
    e.as_org,
    e.country,
    h.client_ip,
    CASE WHEN h.client_basis IN ('viewer', 'peer') THEN r.client_port END AS client_port,
    h.ts,
    CASE WHEN f.has_fractions = 1 THEN 'millisecond' ELSE 'second' END AS time_precision,
    'UTC' AS time_zone,
    upper(r.method) AS method,
    r.status,
    d.outcome,
    h.role,
    h.client_basis,
    s.format,
    f.has_ports = 1 AS port_logged,
    s.path AS source_file,
    h.line_no,
    s.sha256 AS source_sha256,
    r.user_agent
FROM hits AS h
JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
JOIN sources AS s ON s.source_id = h.source_id
JOIN source_facts AS f ON f.source_id = h.source_id
JOIN downloaders AS d ON d.resource_path = h.resource_path AND d.client_ip = h.client_ip
LEFT JOIN ip_enrichment AS e ON e.address = h.client_ip
WHERE h.counts
  AND h.window_position IN ('exposure', 'margin')
  AND h.client_ip IS NOT NULL
