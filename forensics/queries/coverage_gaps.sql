-- name: coverage_gaps
-- purpose: Hours of the exposure window and margin in which a log role that has lines before and after wrote nothing: every answer for those hours is incomplete.
-- params: (none)
SELECT role, hour_start, lines
FROM coverage
WHERE is_gap
ORDER BY role, hour_start
