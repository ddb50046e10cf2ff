-- name: stage_log_edges
-- purpose: Per log role: its first and last line, its lines inside the examined period, and its lines in the hour after its first line and before its last, so a log that starts late or ends early can be said with the lines one would expect in the missing stretch.
-- params: examine_from, examine_to
-- writes: none (rows for forensics.investigate)
WITH roles AS (
    SELECT role, min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM sources
    WHERE first_ts IS NOT NULL
    GROUP BY role
)
SELECT
    ro.role,
    ro.first_ts,
    ro.last_ts,
    count(r.ts) FILTER (WHERE r.ts BETWEEN $examine_from::TIMESTAMPTZ AND $examine_to::TIMESTAMPTZ) AS lines_examined,
    count(r.ts) FILTER (WHERE r.ts < ro.first_ts + INTERVAL 1 HOUR) AS lines_first_hour,
    count(r.ts) FILTER (WHERE r.ts > ro.last_ts - INTERVAL 1 HOUR) AS lines_last_hour
FROM roles AS ro
LEFT JOIN sources AS s ON s.role = ro.role
LEFT JOIN requests AS r ON r.source_id = s.source_id
    AND (r.ts BETWEEN $examine_from::TIMESTAMPTZ AND $examine_to::TIMESTAMPTZ
         OR r.ts < ro.first_ts + INTERVAL 1 HOUR
         OR r.ts > ro.last_ts - INTERVAL 1 HOUR)
GROUP BY ro.role, ro.first_ts, ro.last_ts
ORDER BY ro.role
