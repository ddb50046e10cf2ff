-- name: stage_candidate_queries
-- purpose: The distinct query strings of the requests whose path names a resource, so that they are percent-decoded once in Python (one decoding rule on every engine) when a resource is matched with its query.
-- params: (none)
-- writes: none (rows for forensics.investigate)
SELECT DISTINCT r.query
FROM candidate_paths AS c
JOIN requests AS r ON r.path = c.path
JOIN sources AS s ON s.source_id = r.source_id AND s.format = c.format
WHERE c.relation = 'resource' AND r.query IS NOT NULL
