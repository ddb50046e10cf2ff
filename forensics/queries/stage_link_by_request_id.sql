-- name: stage_link_by_request_id
-- purpose: One pass of linking origin hits relayed by the CDN to the edge hit they served, by the CloudFront request id the origin logged (X-Amz-Cf-Id), one origin row per edge row (issue 3, rule 4): the hits with this pass's links added.
-- params: (none)
-- writes: hits (replace)
-- Only pairs that are each other's best choice (nearest in time, then file and line) are linked in
-- one pass; the caller repeats the pass until it links nothing more, so retries with the same id
-- pair off one to one. Times are compared in whole microseconds (epoch_us), exact on every engine.
WITH origin_rows AS (
    SELECT h.source_id, h.line_no, h.ts, h.resource_path,
           coalesce(r.extra ->> 'x_amz_cf_id', r.extra ->> 'http_x_amz_cf_id') AS cf_id
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.role = 'origin'
      AND h.client_basis IN ('forwarded_for', 'unknown')
      AND h.linked_source_id IS NULL
),
edge_rows AS (
    SELECT h.source_id, h.line_no, h.ts, h.resource_path, r.request_id
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.role = 'cdn'
      AND r.request_id IS NOT NULL
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
    JOIN edge_rows AS e ON e.request_id = o.cf_id AND e.resource_path = o.resource_path
),
links AS (
    SELECT * FROM pairs WHERE rank_for_edge = 1 AND rank_for_origin = 1
)
SELECT
    h.source_id, h.line_no, h.resource_path, h.role, h.ts, h.match_how, h.window_position,
    h.peer_ip, h.client_ip, h.client_basis, h.claimed_forwarded_for, h.client_flags,
    CASE WHEN p.origin_line_no IS NULL THEN h.linked_source_id ELSE p.edge_source_id END AS linked_source_id,
    CASE WHEN p.origin_line_no IS NULL THEN h.linked_line_no ELSE p.edge_line_no END AS linked_line_no,
    CASE WHEN p.origin_line_no IS NULL THEN h.linked_by ELSE 'request_id' END AS linked_by,
    CASE WHEN p.origin_line_no IS NULL THEN h.counts ELSE FALSE END AS counts
FROM hits AS h
LEFT JOIN links AS p ON p.origin_source_id = h.source_id AND p.origin_line_no = h.line_no
