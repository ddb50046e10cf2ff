-- name: stage_downloaders
-- purpose: One row per resource and resolved client over the exposure window and margin, with what the client received: complete, partial, failed, headers_only or undetermined, and how sure (issue 3, rule 5).
-- params: resource_path, resource_size, size_inferred, size_estimated, undetermined_reason, has_cdn_logs
-- writes: downloaders (append)
-- Body bytes received per counted request:
--   origin (nginx, Apache %B ...): body_bytes as logged, exact;
--   CloudFront edge: no body count is logged, only sc-bytes (total, headers included) and
--   sc-content-len (declared body). When sc-bytes >= sc-content-len the whole declared body is
--   taken as sent (exact: this is how CloudFront's own documentation reads a completed response,
--   at the cost of a possible shortfall no larger than the headers); when sc-bytes is smaller the
--   body is at most sc-bytes, an upper bound (not exact).
-- Only 200, 206, CloudFront 000 (status 0) and nginx 499 bodies are bytes of the file; HEAD, 304
-- and error or redirect bodies are not. Byte intervals: a 206 with a logged range covers from
-- range_start for the bytes sent; a 200, 000 or 499 covers from byte 0 (000/499 without a logged
-- range start are not exact: a range request aborted early would be misplaced). Coverage is the
-- union of intervals (sorted by start, running maximum of the end), once over every interval and
-- once over exact ones only:
--   complete/confirmed  exact intervals cover [0, size-1];
--   complete/probable   all intervals, plus the bytes of 206s with no logged range, reach the size;
--   partial             some body bytes, not the whole file (probable when no byte count is exact);
--   failed              a request other than HEAD or 304 that received no body bytes;
--   headers_only        only HEAD requests or 304s (a 304 after a complete copy is already complete);
--   undetermined        body bytes were received but the size is unknown (resource_size NULL), so
--                       complete and partial cannot be told apart; failed and headers_only never
--                       need the size and are decided as usual.
-- A size estimated from total bytes less headers (size_estimated) makes complete and partial probable.
-- file_bytes_covered is the union of the intervals (distinct bytes of the file, never above the
-- size); bytes_received the sum of every body (bytes transferred, repeat and overlap included).
WITH counted AS (
    SELECT
        h.resource_path,
        coalesce(h.client_ip, 'unknown via ' || coalesce(h.peer_ip, '?')) AS client_key,
        h.client_ip,
        h.ts,
        h.role,
        h.window_position,
        h.match_how,
        h.client_basis,
        h.linked_source_id,
        upper(r.method) AS method,
        r.status,
        r.range_start,
        r.range_end,
        CASE
            WHEN upper(r.method) = 'HEAD' OR r.status NOT IN (200, 206, 0, 499) THEN 0
            WHEN r.body_bytes IS NOT NULL THEN r.body_bytes
            WHEN r.total_bytes IS NULL THEN 0
            WHEN r.content_length IS NOT NULL AND r.total_bytes >= r.content_length THEN r.content_length
            ELSE r.total_bytes
        END AS body_received,
        (
            r.body_bytes IS NOT NULL
            OR (r.content_length IS NOT NULL AND r.total_bytes >= r.content_length)
        ) AS body_exact
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path
      AND h.counts
      AND h.window_position IN ('exposure', 'margin')
),
intervals AS (
    SELECT
        client_key,
        coalesce(range_start, 0) AS first_byte,
        -- the bytes sent from the first byte, cut at the logged range end and at the size (when known)
        least(
            coalesce(range_start, 0) + body_received - 1,
            coalesce(CASE WHEN status = 206 THEN range_end END, coalesce(range_start, 0) + body_received - 1),
            coalesce($resource_size::BIGINT - 1, coalesce(range_start, 0) + body_received - 1)
        ) AS last_byte,
        body_exact AND (status IN (200, 206) OR range_start IS NOT NULL) AS exact
    FROM counted
    WHERE body_received > 0 AND (status <> 206 OR range_start IS NOT NULL)
),
-- Each interval once per set (UNION, not UNION ALL): a repeated interval adds nothing to the union
-- of intervals, and a client that fetched the whole file ten times would sort it ten times.
interval_sets AS (
    SELECT client_key, 'all' AS interval_set, first_byte, last_byte FROM intervals
    UNION
    SELECT client_key, 'exact' AS interval_set, first_byte, last_byte FROM intervals WHERE exact
),
ordered AS (
    SELECT *,
           max(last_byte) OVER (
               PARTITION BY client_key, interval_set ORDER BY first_byte, last_byte
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ) AS reached_before
    FROM interval_sets
    WHERE last_byte >= first_byte
),
islands AS (
    SELECT *,
           sum(CASE WHEN reached_before IS NULL OR first_byte > reached_before + 1 THEN 1 ELSE 0 END) OVER (
               PARTITION BY client_key, interval_set ORDER BY first_byte, last_byte
               ROWS UNBOUNDED PRECEDING
           ) AS island
    FROM ordered
),
island_spans AS (
    SELECT client_key, interval_set, island, max(last_byte) - min(first_byte) + 1 AS span
    FROM islands
    GROUP BY client_key, interval_set, island
),
covered AS (
    SELECT client_key,
           coalesce(sum(span) FILTER (WHERE interval_set = 'all'), 0) AS covered_all,
           coalesce(sum(span) FILTER (WHERE interval_set = 'exact'), 0) AS covered_exact
    FROM island_spans
    GROUP BY client_key
),
per_client AS (
    SELECT
        c.client_key,
        any_value(c.client_ip) AS client_ip,
        min(c.ts) AS first_seen,
        max(c.ts) AS last_seen,
        count(*) AS requests,
        sum(c.body_received) AS bytes_received,
        bool_or(c.body_received > 0 AND c.body_exact) AS any_exact_body,
        coalesce(sum(c.body_received) FILTER (WHERE c.status = 206 AND c.range_start IS NULL), 0)
            AS unranged_bytes,
        bool_or(c.method <> 'HEAD' AND c.status <> 304 AND c.body_received = 0) AS asked_and_got_nothing,
        bool_and(c.window_position = 'margin') AS only_in_margin,
        bool_or(c.match_how = 'case_folded') AS case_folded_path,
        bool_or(c.match_how IN ('decoded', 'double_decoded')) AS encoded_path,
        bool_or(c.match_how = 'double_decoded') AS double_encoded_path,
        bool_or(c.match_how = 'normalised') AS normalised_path,
        bool_or(c.client_ip IS NULL) AS client_unknown,
        bool_or(
            $has_cdn_logs AND c.role = 'origin' AND c.client_basis IN ('forwarded_for', 'unknown')
            AND c.linked_source_id IS NULL
        ) AS no_edge_record
    FROM counted AS c
    GROUP BY c.client_key
),
-- The lists of each client's distinct values (statuses, user agents, referrers, flags, claimed
-- forwarded-for addresses) were built by stage_client_values and stage_client_lists.
value_lists AS (
    SELECT client_key, statuses, user_agents, referers, client_flags, claimed_forwarded_for
    FROM client_lists
    WHERE resource_path = $resource_path
),
-- Which logs saw the client: linked origin rows (not counted on their own) are included here.
seen_in AS (
    SELECT client_key, list_sort(list_distinct(list(role))) AS sources
    FROM (
        SELECT DISTINCT coalesce(h.client_ip, 'unknown via ' || coalesce(h.peer_ip, '?')) AS client_key, h.role
        FROM hits AS h
        WHERE h.resource_path = $resource_path AND h.window_position IN ('exposure', 'margin')
    ) AS client_roles
    GROUP BY client_key
),
judged AS (
    SELECT
        p.*,
        coalesce(v.covered_all, 0) AS covered_all,
        coalesce(v.covered_exact, 0) AS covered_exact,
        CASE
            WHEN $resource_size::BIGINT IS NULL AND p.bytes_received > 0 THEN 'undetermined'
            WHEN coalesce(v.covered_exact, 0) >= $resource_size::BIGINT THEN 'complete'
            WHEN coalesce(v.covered_all, 0) + p.unranged_bytes >= $resource_size::BIGINT THEN 'complete'
            WHEN p.bytes_received > 0 THEN 'partial'
            WHEN p.asked_and_got_nothing THEN 'failed'
            ELSE 'headers_only'
        END AS outcome,
        CASE
            WHEN $resource_size::BIGINT IS NULL AND p.bytes_received > 0 THEN NULL
            WHEN $size_estimated AND p.bytes_received > 0 THEN 'probable'
            WHEN coalesce(v.covered_exact, 0) >= $resource_size::BIGINT THEN 'confirmed'
            WHEN coalesce(v.covered_all, 0) + p.unranged_bytes >= $resource_size::BIGINT THEN 'probable'
            WHEN p.bytes_received > 0 AND NOT p.any_exact_body THEN 'probable'
            ELSE 'confirmed'
        END AS confidence
    FROM per_client AS p
    LEFT JOIN covered AS v ON v.client_key = p.client_key
)
SELECT
    $resource_path AS resource_path,
    j.client_ip,
    j.outcome,
    j.confidence,
    j.first_seen,
    j.last_seen,
    j.requests,
    j.bytes_received,
    CASE
        WHEN $resource_size::BIGINT IS NULL THEN j.covered_all + j.unranged_bytes
        ELSE least($resource_size::BIGINT, j.covered_all + j.unranged_bytes)
    END AS file_bytes_covered,
    -- the share rounded half up to 0.01 in integer arithmetic, the same on every engine
    CAST(floor((20000 * least($resource_size::BIGINT, j.covered_all + j.unranged_bytes) + $resource_size::BIGINT)
               / (2 * $resource_size::BIGINT)) AS DOUBLE) / 100 AS coverage_pct,
    $resource_size::BIGINT AS resource_size,
    CASE WHEN j.outcome = 'undetermined' THEN $undetermined_reason::VARCHAR END AS outcome_reason,
    coalesce(l.statuses, []::VARCHAR[]) AS statuses,
    coalesce(l.user_agents, []::VARCHAR[]) AS user_agents,
    coalesce(l.referers, []::VARCHAR[]) AS referers,
    s.sources,
    coalesce(l.claimed_forwarded_for, []::VARCHAR[]) AS claimed_forwarded_for,
    list_sort(list_distinct(list_concat(
        coalesce(l.client_flags, []::VARCHAR[]),
        CASE WHEN j.client_unknown THEN ['client_unknown'] ELSE []::VARCHAR[] END,
        CASE WHEN j.no_edge_record THEN ['no_edge_record'] ELSE []::VARCHAR[] END,
        CASE WHEN j.only_in_margin THEN ['only_in_margin'] ELSE []::VARCHAR[] END,
        CASE WHEN j.case_folded_path THEN ['case_folded_path'] ELSE []::VARCHAR[] END,
        CASE WHEN j.double_encoded_path THEN ['double_encoded_path']
             WHEN j.encoded_path THEN ['encoded_path'] ELSE []::VARCHAR[] END,
        CASE WHEN j.normalised_path THEN ['normalised_path'] ELSE []::VARCHAR[] END,
        CASE WHEN $size_inferred AND $resource_size::BIGINT IS NOT NULL THEN ['size_inferred'] ELSE []::VARCHAR[] END,
        CASE WHEN $size_estimated THEN ['size_estimated'] ELSE []::VARCHAR[] END,
        CASE WHEN $resource_size::BIGINT IS NULL THEN ['size_unknown'] ELSE []::VARCHAR[] END
    ))) AS flags
FROM judged AS j
LEFT JOIN seen_in AS s ON s.client_key = j.client_key
LEFT JOIN value_lists AS l ON l.client_key = j.client_key
