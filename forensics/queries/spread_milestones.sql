-- name: spread_milestones
-- purpose: The moments of the spread: first request, first download, first crawler, first request and first download by an outsider (not the agency, not a bot), last download, each with its log line.
-- params: (none)
SELECT resource_path, milestone, ts, client_ip, referer, status, source_file, line_no
FROM spread_milestones
ORDER BY resource_path, ts, milestone
