-- name: stage_candidate_paths
-- purpose: Distinct (format, logged path) pairs that may name a resource, its folder or a similar file: a cheap substring filter in SQL so that only these few paths are decoded and compared in Python.
-- params: needle_pattern (regular expression over the lower-cased path), min_encoded_length
-- writes: none (rows for forensics.investigate)
-- A path that percent-encodes the very letters of the file name would escape the substring test,
-- so any encoded path at least as long as the file name is kept as well and decoded in Python.
SELECT DISTINCT s.format, r.path
FROM requests AS r
JOIN sources AS s ON s.source_id = r.source_id
WHERE r.path IS NOT NULL
  AND (
    regexp_matches(lower(r.path), $needle_pattern)
    OR (contains(r.path, '%') AND length(r.path) >= $min_encoded_length)
  )
