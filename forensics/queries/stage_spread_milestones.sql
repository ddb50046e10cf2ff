-- name: stage_spread_milestones
-- purpose: The moments of the spread: first request, first download, first request and first download by an outsider (not an agency address, not a crawler or preview bot), first crawler fetch, last download.
-- params: (none)
-- writes: spread_milestones (append)
-- A download is a delivered request (spread_requests.delivered). Ties are broken by file and line.
WITH candidates AS (
    SELECT 'first_request' AS milestone, s.* FROM spread_requests AS s
    UNION ALL
    SELECT 'first_download' AS milestone, s.* FROM spread_requests AS s WHERE s.delivered
    UNION ALL
    SELECT 'first_external_request' AS milestone, s.* FROM spread_requests AS s
    WHERE s.client_party = 'outsider'
    UNION ALL
    SELECT 'first_external_download' AS milestone, s.* FROM spread_requests AS s
    WHERE s.client_party = 'outsider' AND s.delivered
    UNION ALL
    SELECT 'first_crawler_fetch' AS milestone, s.* FROM spread_requests AS s WHERE s.client_party = 'crawler'
),
ranked AS (
    SELECT c.*,
           row_number() OVER (PARTITION BY c.resource_path, c.milestone ORDER BY c.ts, c.source_id, c.line_no) AS n
    FROM candidates AS c
    UNION ALL
    SELECT 'last_download' AS milestone, s.*,
           row_number() OVER (
               PARTITION BY s.resource_path ORDER BY s.ts DESC, s.source_id DESC, s.line_no DESC
           ) AS n
    FROM spread_requests AS s
    WHERE s.delivered
)
SELECT
    r.resource_path,
    r.milestone,
    r.ts,
    r.client_ip,
    r.referer,
    r.status,
    src.path AS source_file,
    r.line_no
FROM ranked AS r
JOIN sources AS src ON src.source_id = r.source_id
WHERE r.n = 1
