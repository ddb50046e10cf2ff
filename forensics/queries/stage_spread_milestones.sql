-- name: stage_spread_milestones
-- purpose: The moments of the spread: first request, first download, first request and first download by an outsider (not an agency address, not a crawler or preview bot), first crawler fetch, last download.
-- params: (none)
-- writes: spread_milestones (append)
-- A download is a delivered request (spread_requests.delivered). Ties are broken by file and line.
-- Each milestone's moment is found in one pass (a minimum or maximum per resource); only the
-- requests at one of those moments are then ordered, to break ties: ordering every request once
-- for each milestone cost most of the follow-up's time with a million requests.
WITH moments AS (
    SELECT resource_path,
           min(ts) AS first_request,
           min(CASE WHEN delivered THEN ts END) AS first_download,
           min(CASE WHEN client_party = 'outsider' THEN ts END) AS first_external_request,
           min(CASE WHEN client_party = 'outsider' AND delivered THEN ts END) AS first_external_download,
           min(CASE WHEN client_party = 'crawler' THEN ts END) AS first_crawler_fetch,
           max(CASE WHEN delivered THEN ts END) AS last_download
    FROM spread_requests
    GROUP BY resource_path
),
at_moments AS (
    SELECT s.*, m.first_request, m.first_download, m.first_external_request, m.first_external_download,
           m.first_crawler_fetch, m.last_download
    FROM spread_requests AS s
    JOIN moments AS m ON m.resource_path = s.resource_path
    WHERE s.ts IN (m.first_request, m.first_download, m.first_external_request, m.first_external_download,
                   m.first_crawler_fetch, m.last_download)
),
candidates AS (
    SELECT 'first_request' AS milestone, a.* FROM at_moments AS a WHERE a.ts = a.first_request
    UNION ALL
    SELECT 'first_download' AS milestone, a.* FROM at_moments AS a WHERE a.delivered AND a.ts = a.first_download
    UNION ALL
    SELECT 'first_external_request' AS milestone, a.* FROM at_moments AS a
    WHERE a.client_party = 'outsider' AND a.ts = a.first_external_request
    UNION ALL
    SELECT 'first_external_download' AS milestone, a.* FROM at_moments AS a
    WHERE a.client_party = 'outsider' AND a.delivered AND a.ts = a.first_external_download
    UNION ALL
    SELECT 'first_crawler_fetch' AS milestone, a.* FROM at_moments AS a
    WHERE a.client_party = 'crawler' AND a.ts = a.first_crawler_fetch
),
ranked AS (
    SELECT c.milestone, c.resource_path, c.ts, c.client_ip, c.referer, c.status, c.source_id, c.line_no,
           row_number() OVER (PARTITION BY c.resource_path, c.milestone ORDER BY c.ts, c.source_id, c.line_no) AS n
    FROM candidates AS c
    UNION ALL
    SELECT 'last_download' AS milestone, a.resource_path, a.ts, a.client_ip, a.referer, a.status, a.source_id,
           a.line_no,
           row_number() OVER (
               PARTITION BY a.resource_path ORDER BY a.ts DESC, a.source_id DESC, a.line_no DESC
           ) AS n
    FROM at_moments AS a
    WHERE a.delivered AND a.ts = a.last_download
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
