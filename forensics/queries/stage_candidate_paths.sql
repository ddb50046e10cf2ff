-- name: stage_candidate_paths
-- purpose: Distinct (format, logged path) pairs that may name a resource, its folder or a similar file: a cheap substring filter in SQL so that only these few paths are decoded and compared in Python.
-- params: needle_pattern (regular expression over the lower-cased path), min_encoded_length
-- writes: none (rows for forensics.investigate)
-- A path that percent-encodes the very letters of the file name would escape the substring test,
-- so any encoded path at least as long as the file name is kept as well and decoded in Python.
-- The test runs on the distinct paths, not on every request: a log repeats its paths.
WITH logged AS (
    SELECT DISTINCT s.format, r.path
    FROM requests AS r
    JOIN sources AS s ON s.source_id = r.source_id
    WHERE r.path IS NOT NULL
)
SELECT l.format, l.path
FROM logged AS l
WHERE regexp_matches(lower(l.path), $needle_pattern)
   OR (contains(l.path, '%') AND length(l.path) >= $min_encoded_length)
