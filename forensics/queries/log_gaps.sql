-- name: log_gaps
-- purpose: Stretches of the examined period a log may be missing, at the logs' own resolution (silent 5-minute runs, missing delivery files, logs that start late or end early), with the lines expected there and the chance of such a silence.
-- params: (none)
SELECT role, format, kind, gap_start, gap_end, round(expected_lines, 1) AS expected_lines, chance, detail
FROM log_gaps
ORDER BY role, gap_start, kind
