-- name: stage_resource_size
-- purpose: Infer a resource's size when the case file gives none: the full object size where a log records it, else the most common body size of 200 responses to GET (issue 3, rule 5).
-- params: resource_path
-- At a CloudFront edge the body is sc-content-len (declared) because sc-bytes counts headers; at an
-- origin it is the logged body byte count (nginx body_bytes_sent). Cut-short 200s give smaller bodies, which the mode outvotes.
WITH observed AS (
    SELECT 'object_size' AS basis, r.object_size AS size
    FROM hits AS h
    JOIN requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path AND r.object_size > 0
    UNION ALL
    SELECT 'body_of_200' AS basis,
           CASE WHEN r.body_bytes IS NOT NULL THEN r.body_bytes ELSE r.content_length END AS size
    FROM hits AS h
    JOIN requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path AND r.status = 200 AND upper(r.method) = 'GET'
)
SELECT size, basis, count(*) AS responses
FROM observed
WHERE size > 0
GROUP BY size, basis
ORDER BY basis = 'object_size' DESC, responses DESC, size DESC
LIMIT 1
