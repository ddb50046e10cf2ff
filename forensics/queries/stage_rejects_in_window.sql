-- name: stage_rejects_in_window
-- purpose: Rejected lines in files whose lines reach into the examined period (a rejected line has no time of its own), and how many of them name the resource's file, since a request for the file may be among them.
-- params: examine_from, examine_to, file_name_pattern (a regular expression of the resources' file names, lower-case)
-- writes: none (rows for forensics.investigate)
SELECT
    s.role,
    count(*) AS lines,
    count(*) FILTER (WHERE regexp_matches(lower(j.line), $file_name_pattern::VARCHAR)) AS naming_file,
    count(DISTINCT s.source_id) AS files
FROM rejects AS j
JOIN sources AS s ON s.source_id = j.source_id
WHERE s.first_ts IS NULL
   OR (s.first_ts <= $examine_to::TIMESTAMPTZ AND s.last_ts >= $examine_from::TIMESTAMPTZ)
GROUP BY s.role
ORDER BY s.role
