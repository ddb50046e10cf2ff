-- name: stage_client_values
-- purpose: Each client's distinct values of each kind (status, user agent, referrer, flag, claimed forwarded-for) over its counted requests for one resource, from which its lists in `downloaders` are built.
-- params: resource_path
-- writes: client_values (append)
-- The same requests as stage_downloaders counts: counted hits in the exposure window and margin.
-- NULL values are left out (as list_distinct leaves them out). Distinct rows first, lists after:
-- a client repeats the same few values over many requests, and listing long strings is what costs.
WITH labelled AS (
    SELECT
        coalesce(h.client_ip, 'unknown via ' || coalesce(h.peer_ip, '?')) AS client_key,
        h.client_flags,
        h.claimed_forwarded_for,
        r.status,
        r.user_agent,
        r.referer
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path
      AND h.counts
      AND h.window_position IN ('exposure', 'margin')
),
client_values AS (
    SELECT client_key, 'status' AS kind, CAST(status AS VARCHAR) AS value FROM labelled
    UNION
    SELECT client_key, 'user_agent' AS kind, user_agent AS value FROM labelled
    UNION
    SELECT client_key, 'referer' AS kind, referer AS value FROM labelled
    UNION
    SELECT client_key, 'client_flag' AS kind, unnest(client_flags) AS value FROM labelled
    UNION
    SELECT client_key, 'claimed_forwarded_for' AS kind, claimed_forwarded_for AS value FROM labelled
)
SELECT $resource_path AS resource_path, client_key, kind, value
FROM client_values
WHERE value IS NOT NULL
