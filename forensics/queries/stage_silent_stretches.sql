-- name: stage_silent_stretches
-- purpose: Runs of empty time bins inside a log's own span that overlap the examined period, with the lines the log's neighbouring bins lead one to expect there; a silent stretch where many lines were expected is a missing log file or a lost delivery.
-- params: examine_from, examine_to, bin_minutes, neighbourhood_minutes, min_expected
-- A "log" is one role and format. Bins are bin_minutes wide, aligned to UTC. Only bins wholly
-- inside the log's span (its first to last line) are judged, so a log that starts late or ends
-- early is not a silent stretch (investigate.py reports those as starts_late / ends_early). The
-- rate is the mean lines per bin in neighbourhood_minutes before the run and after it, the lower
-- of the two (so a run at the edge of a busy period is not overstated); expected = rate x bins.
-- Under a Poisson count the chance of no line at all is exp(-expected); rows below min_expected
-- are dropped as ordinary quiet.
WITH logs AS (
    SELECT role, format, min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM sources
    WHERE first_ts IS NOT NULL
    GROUP BY role, format
),
bins AS (
    SELECT unnest(generate_series(
        time_bucket(to_minutes($bin_minutes::BIGINT),
                    $examine_from::TIMESTAMPTZ - to_minutes($neighbourhood_minutes::BIGINT)),
        $examine_to::TIMESTAMPTZ + to_minutes($neighbourhood_minutes::BIGINT),
        to_minutes($bin_minutes::BIGINT)
    )) AS bin_start
),
line_counts AS (
    SELECT s.role, s.format, time_bucket(to_minutes($bin_minutes::BIGINT), r.ts) AS bin_start, count(*) AS lines
    FROM requests AS r
    JOIN sources AS s ON s.source_id = r.source_id
    WHERE r.ts >= $examine_from::TIMESTAMPTZ - to_minutes($neighbourhood_minutes::BIGINT + $bin_minutes::BIGINT)
      AND r.ts <= $examine_to::TIMESTAMPTZ + to_minutes($neighbourhood_minutes::BIGINT + $bin_minutes::BIGINT)
    GROUP BY 1, 2, 3
),
grid AS (
    SELECT l.role, l.format, b.bin_start, coalesce(c.lines, 0) AS lines,
           epoch(b.bin_start) // ($bin_minutes::BIGINT * 60) AS bin_no
    FROM logs AS l
    JOIN bins AS b
      ON b.bin_start >= l.first_ts AND b.bin_start + to_minutes($bin_minutes::BIGINT) <= l.last_ts
    LEFT JOIN line_counts AS c
      ON c.role = l.role AND c.format = l.format AND c.bin_start = b.bin_start
),
empty_runs AS (
    SELECT role, format, min(bin_start) AS gap_start,
           max(bin_start) + to_minutes($bin_minutes::BIGINT) AS gap_end, count(*) AS bins
    FROM (
        SELECT *, bin_no - row_number() OVER (PARTITION BY role, format ORDER BY bin_no) AS run
        FROM grid
        WHERE lines = 0
    ) AS e
    GROUP BY role, format, run
),
rated AS (
    SELECT e.role, e.format, e.gap_start, e.gap_end, e.bins,
           avg(g.lines) FILTER (WHERE g.bin_start < e.gap_start) AS rate_before,
           avg(g.lines) FILTER (WHERE g.bin_start >= e.gap_end) AS rate_after
    FROM empty_runs AS e
    JOIN grid AS g
      ON g.role = e.role AND g.format = e.format
     AND g.bin_start >= e.gap_start - to_minutes($neighbourhood_minutes::BIGINT)
     AND g.bin_start < e.gap_end + to_minutes($neighbourhood_minutes::BIGINT)
     AND (g.bin_start < e.gap_start OR g.bin_start >= e.gap_end)
    WHERE e.gap_end > $examine_from::TIMESTAMPTZ AND e.gap_start < $examine_to::TIMESTAMPTZ
    GROUP BY e.role, e.format, e.gap_start, e.gap_end, e.bins
)
SELECT role, format, gap_start, gap_end, bins,
       coalesce(least(rate_before, rate_after), rate_before, rate_after) * bins AS expected_lines
FROM rated
WHERE coalesce(least(rate_before, rate_after), rate_before, rate_after) * bins >= $min_expected
ORDER BY role, format, gap_start
