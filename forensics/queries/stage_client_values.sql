-- name: stage_client_values
-- purpose: Each client's distinct values of each kind (status, user agent, referrer, flag, claimed forwarded-for) over its counted requests for one resource, from which its lists in `downloaders` are built.
-- params: resource_path
-- writes: client_values (append)
-- The same requests as stage_downloaders counts: counted hits in the exposure window and margin.
-- NULL values are left out (as list_distinct leaves them out). Distinct rows first, lists after:
-- a client repeats the same few values over many requests, and listing long strings is what costs.
-- Each request's three values from its requests row are taken in one pass (a row per kind), and
-- the flags and claimed addresses from `hits` alone: a CTE read five times is held whole, which
-- at ten million hits spilled gigabytes of user agents.
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
client_values AS (
    SELECT
        l.client_key,
        k.kind,
        CASE k.kind
            WHEN 'status' THEN CAST(l.status AS VARCHAR)
            WHEN 'user_agent' THEN l.user_agent
            ELSE l.referer
        END AS value
    FROM labelled AS l
    CROSS JOIN (VALUES ('status'), ('user_agent'), ('referer')) AS k(kind)
    UNION
    SELECT client_key, 'client_flag' AS kind, unnest(client_flags) AS value FROM from_hits
    UNION
    SELECT client_key, 'claimed_forwarded_for' AS kind, claimed_forwarded_for AS value FROM from_hits
)
SELECT $resource_path AS resource_path, client_key, kind, value
FROM client_values
WHERE value IS NOT NULL
