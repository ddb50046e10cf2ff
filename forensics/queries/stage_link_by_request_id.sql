-- name: stage_link_by_request_id
-- purpose: Link origin hits relayed by the CDN to the edge hit they served, by the CloudFront request id the origin logged (X-Amz-Cf-Id), one origin row per edge row (issue 3, rule 4).
-- params: (none)
-- Only pairs that are each other's best choice (nearest in time) are linked in one pass; the caller
-- repeats the pass until nothing more links, so retries with the same id pair off one to one.
UPDATE hits
SET linked_source_id = p.edge_source_id,
    linked_line_no = p.edge_line_no,
    linked_by = 'request_id',
    counts = FALSE
FROM (
    WITH origin_rows AS (
        SELECT h.source_id, h.line_no, h.ts, h.resource_path,
               coalesce(r.extra ->> 'x_amz_cf_id', r.extra ->> 'http_x_amz_cf_id') AS cf_id
        FROM hits AS h
        JOIN requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
        WHERE h.role = 'origin'
          AND h.client_basis IN ('forwarded_for', 'unknown')
          AND h.linked_source_id IS NULL
    ),
    edge_rows AS (
        SELECT h.source_id, h.line_no, h.ts, h.resource_path, r.request_id
        FROM hits AS h
        JOIN requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
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
                   ORDER BY abs(epoch(o.ts) - epoch(e.ts)), o.source_id, o.line_no
               ) AS rank_for_edge,
               row_number() OVER (
                   PARTITION BY o.source_id, o.line_no
                   ORDER BY abs(epoch(o.ts) - epoch(e.ts)), e.source_id, e.line_no
               ) AS rank_for_origin
        FROM origin_rows AS o
        JOIN edge_rows AS e ON e.request_id = o.cf_id AND e.resource_path = o.resource_path
    )
    SELECT * FROM pairs WHERE rank_for_edge = 1 AND rank_for_origin = 1
) AS p
WHERE hits.source_id = p.origin_source_id AND hits.line_no = p.origin_line_no
