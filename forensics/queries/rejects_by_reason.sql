-- name: rejects_by_reason
-- purpose: Lines that could not be read as requests, per source file and reason, with how many and the first example (line number and text).
-- params: (none)
SELECT
    s.path AS source_file,
    rj.reason,
    count(*) AS lines,
    min(rj.line_no) AS first_line_no,
    arg_min(rj.line, rj.line_no) AS first_example
FROM rejects rj
JOIN sources s USING (source_id)
GROUP BY ALL
ORDER BY source_file, lines DESC, rj.reason
