-- name: stage_log_coverage
-- purpose: Log lines per source role and UTC hour over the exposure window and margin; an hour with no lines from a role that has lines before and after it is a gap (issue 3, rule 6), since a missing log file makes every answer incomplete.
-- params: examine_from, examine_to
-- writes: coverage (replace)
WITH hours AS (
    SELECT unnest(generate_series(
        date_trunc('hour', $examine_from::TIMESTAMPTZ),
        $examine_to::TIMESTAMPTZ,
        INTERVAL 1 HOUR
    )) AS hour_start
),
roles AS (
    SELECT role, min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM sources
    WHERE first_ts IS NOT NULL
    GROUP BY role
),
line_counts AS (
    SELECT s.role, date_trunc('hour', r.ts) AS hour_start, count(*) AS lines
    FROM requests AS r
    JOIN sources AS s ON s.source_id = r.source_id
    WHERE r.ts >= date_trunc('hour', $examine_from::TIMESTAMPTZ) AND r.ts <= $examine_to::TIMESTAMPTZ
    GROUP BY 1, 2
)
SELECT
    ro.role,
    h.hour_start,
    coalesce(c.lines, 0) AS lines,
    coalesce(c.lines, 0) = 0
        AND ro.first_ts < h.hour_start
        AND ro.last_ts >= h.hour_start + INTERVAL 1 HOUR AS is_gap
FROM roles AS ro
CROSS JOIN hours AS h
LEFT JOIN line_counts AS c ON c.role = ro.role AND c.hour_start = h.hour_start
