-- name: stage_link_by_time
-- purpose: Link origin hits relayed by the CDN to the edge hit they served when no request id links them: same resolved client, same resource, origin time within the tolerance around the edge time, and an edge result that went to the origin (miss, refresh hit, error, viewer abort). One to one (issue 3, rule 4).
-- params: link_before_s, link_after_s
-- CloudFront's `time` is when the edge finished responding (AWS standard-log reference) and nginx
-- logs when the origin finished sending. The origin fetch starts after the edge request starts
-- (edge time minus time-taken), so the origin line can be that much earlier than the edge line
-- (edge still streaming to a slow viewer), plus $link_before_s for whole-second times and clock
-- skew; it can be up to $link_after_s later (a viewer that gave up while the origin kept filling
-- the cache).
UPDATE hits
SET linked_source_id = p.edge_source_id,
    linked_line_no = p.edge_line_no,
    linked_by = 'time',
    counts = FALSE
FROM (
    WITH origin_rows AS (
        SELECT h.source_id, h.line_no, h.ts, h.resource_path, h.client_ip
        FROM hits AS h
        WHERE h.role = 'origin'
          AND h.client_basis = 'forwarded_for'
          AND h.linked_source_id IS NULL
    ),
    edge_rows AS (
        SELECT h.source_id, h.line_no, h.ts, h.resource_path, h.client_ip,
               coalesce(r.time_taken_ms, 0) / 1000.0 AS seconds_taken
        FROM hits AS h
        JOIN requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
        WHERE h.role = 'cdn'
          AND (
              r.status = 0
              OR coalesce(r.cache_status, lower(r.cache_status_raw)) IN ('miss', 'refresh_hit', 'refreshhit', 'error')
          )
          AND NOT EXISTS (
              SELECT 1 FROM hits AS o
              WHERE o.linked_source_id = h.source_id AND o.linked_line_no = h.line_no
          )
    ),
    pairs AS (
        SELECT o.source_id AS origin_source_id, o.line_no AS origin_line_no,
               e.source_id AS edge_source_id, e.line_no AS edge_line_no,
               row_number() OVER (
                   PARTITION BY e.source_id, e.line_no
                   ORDER BY abs(epoch(o.ts) - epoch(e.ts)), o.source_id, o.line_no
               ) AS rank_for_edge,
               row_number() OVER (
                   PARTITION BY o.source_id, o.line_no
                   ORDER BY abs(epoch(o.ts) - epoch(e.ts)), e.source_id, e.line_no
               ) AS rank_for_origin
        FROM origin_rows AS o
        JOIN edge_rows AS e
          ON e.client_ip = o.client_ip
         AND e.resource_path = o.resource_path
         AND o.ts BETWEEN e.ts - to_seconds(e.seconds_taken + $link_before_s::DOUBLE)
                      AND e.ts + to_seconds($link_after_s::DOUBLE)
    )
    SELECT * FROM pairs WHERE rank_for_edge = 1 AND rank_for_origin = 1
) AS p
WHERE hits.source_id = p.origin_source_id AND hits.line_no = p.origin_line_no
