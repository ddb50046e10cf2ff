-- name: stage_client_values
-- purpose: Each client's distinct values of each kind (status, user agent, referrer, flag, claimed forwarded-for) over its counted requests for one resource, from which its lists in `downloaders` are built.
-- params: resource_path
-- writes: client_values (append)
-- The same requests as stage_downloaders counts: counted hits in the exposure window and margin.
-- NULL values are left out (as list_distinct leaves them out). Distinct rows first, lists after:
-- a client repeats the same few values over many requests, and listing long strings is what costs.
-- The flags and claimed addresses are taken from `hits` alone, not from the rows joined to their
-- requests rows.
WITH labelled AS (
    SELECT
        coalesce(h.client_ip, 'unknown via ' || coalesce(h.peer_ip, '?')) AS client_key,
        r.status,
        r.user_agent,
        r.referer
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path
      AND h.counts
      AND h.window_position IN ('exposure', 'margin')
),
from_hits AS (
    SELECT
        coalesce(h.client_ip, 'unknown via ' || coalesce(h.peer_ip, '?')) AS client_key,
        h.client_flags,
        h.claimed_forwarded_for
    FROM hits AS h
    WHERE h.resource_path = $resource_path
      AND h.counts
      AND h.window_position IN ('exposure', 'margin')
),
-- Distinct per kind, the kinds then put together without another distinct: a value of one kind is
-- never a value of another, and one distinct over every kind's rows hashed them all again
-- (ten million hits, alone in the run's transaction with its 2 GB pool: 16.5-19.6 s, 12.5-17.1 s
-- this way, the same rows). `labelled` is read three times, so DuckDB holds it whole, spilling
-- past the pool: an earlier form that read it five times spilled gigabytes of user agents at
-- 1 GB, and this form was measured only at 2 GB, so measure again if the pool shrinks.
flag_values AS (
    SELECT client_key, 'client_flag' AS kind, unnest(client_flags) AS value FROM from_hits
    UNION
    SELECT client_key, 'claimed_forwarded_for' AS kind, claimed_forwarded_for AS value FROM from_hits
),
client_values AS (
    SELECT DISTINCT client_key, 'status' AS kind, CAST(status AS VARCHAR) AS value FROM labelled
    UNION ALL
    SELECT DISTINCT client_key, 'user_agent' AS kind, user_agent AS value FROM labelled
    UNION ALL
    SELECT DISTINCT client_key, 'referer' AS kind, referer AS value FROM labelled
    UNION ALL
    SELECT client_key, kind, value FROM flag_values
)
SELECT $resource_path AS resource_path, client_key, kind, value
FROM client_values
WHERE value IS NOT NULL
