-- name: operator_requests
-- purpose: Requests to network operators: every counted request of every downloader, grouped by network (ASN), with address, client port where logged, UTC time (milliseconds where the log has them), outcome and the log line (file, line, SHA-256).
-- params: asn (optional)
SELECT
    coalesce(o.as_org, 'unknown network') AS operator,
    o.asn,
    o.country,
    o.client_ip,
    o.client_port,
    CASE WHEN o.time_precision = 'millisecond'
         THEN strftime(o.ts, '%Y-%m-%dT%H:%M:%S.%gZ')
         ELSE strftime(o.ts, '%Y-%m-%dT%H:%M:%SZ') END AS utc_time,
    o.time_zone,
    o.outcome,
    o.method,
    o.status,
    o.role,
    o.source_file,
    o.line_no,
    o.source_sha256,
    o.port_logged,
    o.user_agent,
    o.resource_path
FROM operator_requests AS o
WHERE $asn::BIGINT IS NULL OR o.asn = $asn::BIGINT
ORDER BY o.as_org IS NULL, o.as_org, o.asn, o.client_ip, o.ts, o.source_file, o.line_no
