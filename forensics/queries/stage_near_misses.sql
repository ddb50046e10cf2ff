-- name: stage_near_misses
-- purpose: Counts of requests that are near a resource without being downloads of it: the resource outside the window and margin, on a host not listed, in another case or encoded twice without being served, the folder it sits in and similar file names (issue 3, rule 6).
-- params: resource_path, exposure_start, exposure_end, examine_from, examine_to
-- writes: near_misses (append)
WITH near AS (
    SELECT 'resource_outside_window' AS kind, r.path, r.status, h.window_position, r.client_addr, r.ts
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path AND h.window_position = 'outside'
    UNION ALL
    SELECT CASE
               WHEN c.relation <> 'resource' THEN c.relation
               WHEN c.match_how = 'case_folded' THEN 'case_variant'
               WHEN c.match_how = 'double_decoded' THEN 'double_encoded'
               ELSE 'resource_other_host'
           END AS kind,
           r.path, r.status,
           CASE
               WHEN r.ts BETWEEN $exposure_start AND $exposure_end THEN 'exposure'
               WHEN r.ts BETWEEN $examine_from AND $examine_to THEN 'margin'
               ELSE 'outside'
           END AS window_position,
           r.client_addr, r.ts
    FROM candidate_paths AS c
    JOIN requests AS r ON r.path = c.path
    JOIN sources AS s ON s.source_id = r.source_id AND s.format = c.format
    WHERE c.resource_path = $resource_path
      AND c.relation IN ('resource', 'same_folder', 'similar_name')
      -- a request of the resource that is a hit is not near, it is there
      AND NOT EXISTS (
          SELECT 1 FROM hits AS h
          WHERE h.source_id = r.source_id AND h.line_no = r.line_no AND h.resource_path = $resource_path
      )
)
SELECT
    $resource_path AS resource_path,
    kind,
    path,
    status,
    window_position,
    count(*) AS requests,
    count(DISTINCT client_addr) AS clients,
    min(ts) AS first_seen,
    max(ts) AS last_seen
FROM near
GROUP BY kind, path, status, window_position
