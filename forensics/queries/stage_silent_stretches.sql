-- name: stage_silent_stretches
-- purpose: Runs of empty time bins inside a log's own span that overlap the examined period, with the lines the log's neighbouring bins lead one to expect there; a silent stretch where many lines were expected is a missing log file or a lost delivery.
-- params: examine_from, examine_to, bin_minutes, neighbourhood_minutes, min_expected
-- writes: none (rows for forensics.investigate)
-- A "log" is one role and format. Bins are bin_minutes wide, aligned to UTC. Only bins wholly
-- inside the log's span (its first to last line) are judged, so a log that starts late or ends
-- early is not a silent stretch (investigate.py reports those as starts_late / ends_early). The
-- rate is the mean lines per bin in neighbourhood_minutes before the run and after it, the lower
-- of the two (so a run at the edge of a busy period is not overstated); expected = rate x bins.
-- Under a Poisson count the chance of no line at all is exp(-expected); rows below min_expected
-- are dropped as ordinary quiet. Times are counted in whole microseconds since 1970 (epoch_us), so
-- the bins (aligned to UTC midnight, as bin_minutes divides a day) are the same on every engine.
WITH logs AS (
    SELECT role, format, epoch_us(min(first_ts)) AS first_us, epoch_us(max(last_ts)) AS last_us
    FROM sources
    WHERE first_ts IS NOT NULL
    GROUP BY role, format
),
span AS (
    SELECT $bin_minutes::BIGINT * 60000000 AS bin_us,
           $neighbourhood_minutes::BIGINT * 60000000 AS near_us,
           epoch_us($examine_from::TIMESTAMPTZ) AS from_us,
           epoch_us($examine_to::TIMESTAMPTZ) AS to_us
),
bins AS (
    SELECT unnest(generate_series(
        (sp.from_us - sp.near_us) // sp.bin_us * sp.bin_us, sp.to_us + sp.near_us, sp.bin_us
    )) AS start_us
    FROM span AS sp
),
line_counts AS (
    SELECT s.role, s.format, epoch_us(r.ts) // sp.bin_us * sp.bin_us AS start_us, count(*) AS lines
    FROM requests AS r
    JOIN sources AS s ON s.source_id = r.source_id
    CROSS JOIN span AS sp
    WHERE epoch_us(r.ts) >= sp.from_us - sp.near_us - sp.bin_us
      AND epoch_us(r.ts) <= sp.to_us + sp.near_us + sp.bin_us
    GROUP BY 1, 2, 3
),
grid AS (
    SELECT l.role, l.format, b.start_us, coalesce(c.lines, 0) AS lines, b.start_us // sp.bin_us AS bin_no
    FROM logs AS l
    CROSS JOIN span AS sp
    JOIN bins AS b
      ON b.start_us >= l.first_us AND b.start_us + sp.bin_us <= l.last_us
    LEFT JOIN line_counts AS c
      ON c.role = l.role AND c.format = l.format AND c.start_us = b.start_us
),
empty_runs AS (
    SELECT e.role, e.format, min(e.start_us) AS gap_start_us,
           max(e.start_us) + min(sp.bin_us) AS gap_end_us, count(*) AS bins
    FROM (
        SELECT *, bin_no - row_number() OVER (PARTITION BY role, format ORDER BY bin_no) AS run
        FROM grid
        WHERE lines = 0
    ) AS e
    CROSS JOIN span AS sp
    GROUP BY e.role, e.format, e.run
),
rated AS (
    SELECT e.role, e.format, e.gap_start_us, e.gap_end_us, e.bins,
           avg(g.lines) FILTER (WHERE g.start_us < e.gap_start_us) AS rate_before,
           avg(g.lines) FILTER (WHERE g.start_us >= e.gap_end_us) AS rate_after
    FROM empty_runs AS e
    CROSS JOIN span AS sp
    JOIN grid AS g
      ON g.role = e.role AND g.format = e.format
     AND g.start_us >= e.gap_start_us - sp.near_us
     AND g.start_us < e.gap_end_us + sp.near_us
     AND (g.start_us < e.gap_start_us OR g.start_us >= e.gap_end_us)
    WHERE e.gap_end_us > sp.from_us AND e.gap_start_us < sp.to_us
    GROUP BY e.role, e.format, e.gap_start_us, e.gap_end_us, e.bins
)
SELECT role, format,
       CAST(make_timestamp(gap_start_us) AS TIMESTAMPTZ) AS gap_start,
       CAST(make_timestamp(gap_end_us) AS TIMESTAMPTZ) AS gap_end,
       bins,
       coalesce(least(rate_before, rate_after), rate_before, rate_after) * bins AS expected_lines
FROM rated
WHERE coalesce(least(rate_before, rate_after), rate_before, rate_after) * bins >= $min_expected
ORDER BY role, format, gap_start
