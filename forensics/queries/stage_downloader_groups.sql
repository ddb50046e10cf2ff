-- name: stage_downloader_groups
-- purpose: One row per member of each group of addresses joined by downloader_links, with the member's own outcome (unchanged) and the group's: complete when a member is complete or the members' byte ranges together cover the file.
-- params: (none)
-- writes: downloader_groups (append)
-- `group_map` (resource_path, client_ip, group_id) is written by forensics.followup: the connected
-- components of downloader_links, numbered G1, G2, ... in order of the group's first request.
-- Group coverage is the union of the byte intervals whose place in the file is logged and whose
-- body was sent in full: 206 ranges, and 200 responses (the whole file). Byte counts without a
-- place (a 000 or 499 cut short) are not added: where they fell in the file is not logged.
-- The union: intervals sorted by first byte, a running maximum of the last byte, an island starts
-- where an interval begins after everything before it ended (as in stage_downloaders).
WITH members AS (
    SELECT g.resource_path, g.group_id, d.client_ip, d.outcome, d.coverage_pct, d.first_seen,
           d.last_seen, d.resource_size
    FROM group_map AS g
    JOIN downloaders AS d ON d.resource_path = g.resource_path AND d.client_ip = g.client_ip
),
intervals AS (
    SELECT m.resource_path, m.group_id,
           CASE WHEN r.status = 206 THEN r.range_start ELSE 0 END AS first_byte,
           CASE WHEN r.status = 206 THEN r.range_end ELSE m.resource_size - 1 END AS last_byte
    FROM members AS m
    JOIN hits AS h ON h.resource_path = m.resource_path AND h.client_ip = m.client_ip
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.counts
      AND h.window_position IN ('exposure', 'margin')
      AND upper(r.method) <> 'HEAD'
      AND (
          (r.status = 206 AND r.range_start IS NOT NULL AND r.range_end IS NOT NULL)
          OR r.status = 200
      )
      -- the body was sent in full: nginx's body count, or CloudFront's total at least the declared body
      AND coalesce(
          r.body_bytes,
          CASE WHEN r.total_bytes >= r.content_length THEN r.content_length END,
          0
      ) >= CASE WHEN r.status = 206 THEN r.range_end - r.range_start + 1 ELSE m.resource_size END
),
ordered AS (
    SELECT resource_path, group_id, first_byte, last_byte,
           max(last_byte) OVER (
               PARTITION BY resource_path, group_id ORDER BY first_byte, last_byte
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ) AS reached_before
    FROM intervals
),
islands AS (
    SELECT resource_path, group_id, first_byte, last_byte,
           sum(CASE WHEN reached_before IS NULL OR first_byte > reached_before + 1 THEN 1 ELSE 0 END) OVER (
               PARTITION BY resource_path, group_id ORDER BY first_byte, last_byte
               ROWS UNBOUNDED PRECEDING
           ) AS island
    FROM ordered
),
spans AS (
    SELECT resource_path, group_id, island, max(last_byte) - min(first_byte) + 1 AS span
    FROM islands
    GROUP BY resource_path, group_id, island
),
covered AS (
    SELECT resource_path, group_id, sum(span) AS covered
    FROM spans
    GROUP BY resource_path, group_id
),
groups AS (
    SELECT resource_path, group_id,
           count(*) AS members,
           max(resource_size) AS resource_size,
           max(CASE WHEN outcome = 'complete' THEN 1 ELSE 0 END) AS any_complete,
           min(CASE outcome WHEN 'complete' THEN 1 WHEN 'partial' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END) AS best,
           max(coverage_pct) AS best_member_pct,
           min(first_seen) AS group_first_seen,
           max(last_seen) AS group_last_seen
    FROM members
    GROUP BY resource_path, group_id
),
judged AS (
    SELECT g.*,
           coalesce(c.covered, 0) >= g.resource_size AS ranges_cover,
           round(100.0 * least(coalesce(c.covered, 0), g.resource_size) / g.resource_size, 2) AS union_pct
    FROM groups AS g
    LEFT JOIN covered AS c ON c.resource_path = g.resource_path AND c.group_id = g.group_id
)
SELECT
    m.resource_path,
    m.group_id,
    m.client_ip,
    m.outcome,
    m.coverage_pct,
    m.first_seen,
    j.members,
    CASE
        WHEN j.any_complete = 1 OR j.ranges_cover THEN 'complete'
        WHEN j.best = 2 THEN 'partial'
        WHEN j.best = 3 THEN 'failed'
        ELSE 'headers_only'
    END AS group_outcome,
    CASE
        WHEN j.any_complete = 1 THEN 'member'
        WHEN j.ranges_cover THEN 'ranges_together'
    END AS group_complete_by,
    greatest(j.union_pct, coalesce(j.best_member_pct, 0)) AS group_coverage_pct,
    j.group_first_seen,
    j.group_last_seen
FROM members AS m
JOIN judged AS j ON j.resource_path = m.resource_path AND j.group_id = m.group_id
