-- name: stage_link_by_time
-- purpose: One pass of linking origin hits relayed by the CDN to the edge hit they served when no request id links them: same resolved client, same resource, origin time within the tolerance around the edge time, and an edge result that went to the origin (miss, refresh hit, error, viewer abort). One to one (issue 3, rule 4): the hits with this pass's links added.
-- params: link_before_s, link_after_s
-- writes: hits (replace)
-- CloudFront's `time` is when the edge finished responding (AWS standard-log reference) and nginx
-- logs when the origin finished sending. The origin fetch starts after the edge request starts
-- (edge time minus time-taken), so the origin line can be that much earlier than the edge line
-- (edge still streaming to a slow viewer), plus $link_before_s for whole-second times and clock
-- skew; it can be up to $link_after_s later (a viewer that gave up while the origin kept filling
-- the cache). Times and tolerances are compared in whole microseconds (epoch_us, rounded), exact
-- on every engine. The caller repeats the pass until it links nothing more.
WITH origin_rows AS (
    SELECT h.source_id, h.line_no, h.ts, h.resource_path, h.client_ip
    FROM hits AS h
    WHERE h.role = 'origin'
      AND h.client_basis = 'forwarded_for'
      AND h.linked_source_id IS NULL
),
edge_rows AS (
    SELECT h.source_id, h.line_no, h.ts, h.resource_path, h.client_ip,
           epoch_us(h.ts)
             - CAST(round((coalesce(r.time_taken_ms, 0) / 1000.0 + $link_before_s) * 1000000) AS BIGINT) AS earliest_us,
           epoch_us(h.ts) + CAST(round($link_after_s * 1000000) AS BIGINT) AS latest_us
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
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
               ORDER BY abs(epoch_us(o.ts) - epoch_us(e.ts)), o.source_id, o.line_no
           ) AS rank_for_edge,
           row_number() OVER (
               PARTITION BY o.source_id, o.line_no
               ORDER BY abs(epoch_us(o.ts) - epoch_us(e.ts)), e.source_id, e.line_no
           ) AS rank_for_origin
    FROM origin_rows AS o
    JOIN edge_rows AS e
      ON e.client_ip = o.client_ip
     AND e.resource_path = o.resource_path
     AND epoch_us(o.ts) BETWEEN e.earliest_us AND e.latest_us
),
links AS (
    SELECT * FROM pairs WHERE rank_for_edge = 1 AND rank_for_origin = 1
)
SELECT
    h.source_id, h.line_no, h.resource_path, h.role, h.ts, h.match_how, h.window_position,
    h.peer_ip, h.client_ip, h.client_basis, h.claimed_forwarded_for, h.client_flags,
    CASE WHEN p.origin_line_no IS NULL THEN h.linked_source_id ELSE p.edge_source_id END AS linked_source_id,
    CASE WHEN p.origin_line_no IS NULL THEN h.linked_line_no ELSE p.edge_line_no END AS linked_line_no,
    CASE WHEN p.origin_line_no IS NULL THEN h.linked_by ELSE 'time' END AS linked_by,
    CASE WHEN p.origin_line_no IS NULL THEN h.counts ELSE FALSE END AS counts
FROM hits AS h
LEFT JOIN links AS p ON p.origin_source_id = h.source_id AND p.origin_line_no = h.line_no
