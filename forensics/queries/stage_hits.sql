-- name: stage_hits
-- purpose: Every request whose path matched one resource and whose host and query fit, with where it falls against the exposure window (issue 3, rule 2).
-- params: resource_path, any_host, hosts, resource_query, exposure_start, exposure_end, examine_from, examine_to
-- writes: hits (append)
-- `candidate_paths` (resource_path, format, path, match_how, relation) is written by forensics.investigate
-- from the distinct logged paths, and `decoded_queries` (query, decoded) from the distinct query
-- strings of those paths' requests when a resource is matched with its query. Host rule: $any_host
-- (the resource lists no host) accepts any host; otherwise the Host header (port stripped) or the
-- CDN's own host name (CloudFront cs(Host), kept in extra.cdn_host) must be listed, and a line that
-- logs no host at all is kept, since it cannot be told apart. Both window edges are inclusive.
SELECT
    r.source_id,
    r.line_no,
    c.resource_path,
    s.role,
    r.ts,
    c.match_how,
    CASE
        WHEN r.ts BETWEEN $exposure_start AND $exposure_end THEN 'exposure'
        WHEN r.ts BETWEEN $examine_from AND $examine_to THEN 'margin'
        ELSE 'outside'
    END AS window_position,
    TRUE AS counts
FROM (
    -- The candidate spellings of the resource, each kept or not before any request is joined. The
    -- served spellings are found once, uncorrelated: tested per request (a correlated EXISTS), the
    -- rule held the hits in memory (20,000,000 requests: more than the run's 1 GB, and the run
    -- stopped).
    SELECT cand.resource_path, cand.format, cand.path, cand.match_how
    FROM candidate_paths AS cand
    LEFT JOIN (
        -- the folded or twice-decoded spellings the server served (200/206) at least once, per
        -- format (CloudFront's logged %252D is an origin's raw %252D encoded once more)
        SELECT DISTINCT served_source.format, served.path
        FROM requests AS served
        JOIN sources AS served_source ON served_source.source_id = served.source_id
        WHERE served.status IN (200, 206)
          AND served.path IN (
              SELECT spelling.path
              FROM candidate_paths AS spelling
              WHERE spelling.match_how IN ('case_folded', 'double_decoded')
          )
    ) AS served ON served.path = cand.path AND served.format = cand.format
    WHERE cand.resource_path = $resource_path
      AND cand.relation = 'resource'
      -- A spelling that needs case folding or a second decoding is the file only if the server
      -- treats it so: nginx on Linux answers 404 to Detention-Roster.xlsx and to
      -- detention%252Droster.xlsx (it decodes once). Such a spelling counts where the server
      -- served it (200/206) at least once; otherwise its requests go to the near misses.
      AND (cand.match_how NOT IN ('case_folded', 'double_decoded') OR served.path IS NOT NULL)
) AS c
JOIN requests AS r ON r.path = c.path
JOIN sources AS s ON s.source_id = r.source_id AND s.format = c.format
LEFT JOIN decoded_queries AS q ON q.query = r.query
WHERE (
    $any_host
    OR (r.host IS NULL AND (r.extra ->> 'cdn_host') IS NULL)
    OR list_contains($hosts::VARCHAR[], regexp_replace(lower(r.host), ':[0-9]+$', ''))
    OR list_contains($hosts::VARCHAR[], lower(r.extra ->> 'cdn_host'))
  )
  AND ($resource_query::VARCHAR IS NULL OR coalesce(q.decoded, '') = $resource_query::VARCHAR)
