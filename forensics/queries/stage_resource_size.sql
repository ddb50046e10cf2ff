-- name: stage_resource_size
-- purpose: Infer a resource's size when the case file gives none, from every signal the logs give, strongest first; one row per signal with its best candidate.
-- params: resource_path, typical_header_bytes
-- writes: none (rows for forensics.investigate)
-- Signals, in the order they are believed (investigate.py takes the first row):
--   object_size        the full object size the server logged (S3 object_size, Akamai objSize);
--   content_length     the most common Content-Length the server declared on 200 responses to GET
--                      (CloudFront sc-content-len, Caddy, Akamai rspContentLen);
--   body_of_200        the most common body byte count of 200 responses to GET (nginx
--                      body_bytes_sent, Apache %B): cut-short 200s give smaller bodies, which the mode outvotes;
--   total_minus_headers the most common total byte count of 200 responses to GET (formats that log
--                      only bytes with headers: IIS, ALB, Front Door, Application Gateway, GCP) less
--                      the headers, measured where the same log answered HEAD or 304 for the
--                      resource (the same headers without a body), else typical_header_bytes. An
--                      estimate, off by the difference in headers: outcomes judged with it are probable.
WITH resource_rows AS (
    SELECT r.*
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.resource_path = $resource_path
),
header_only AS (
    SELECT median(total_bytes) AS header_bytes, count(*) AS responses
    FROM resource_rows
    WHERE total_bytes > 0 AND body_bytes IS NULL
      AND ((upper(method) = 'HEAD' AND status = 200) OR status = 304)
),
observed AS (
    SELECT 1 AS rank, 'object_size' AS basis, object_size AS size
    FROM resource_rows
    WHERE object_size > 0
    UNION ALL
    SELECT 2 AS rank, 'content_length' AS basis, content_length AS size
    FROM resource_rows
    WHERE status = 200 AND upper(method) = 'GET' AND content_length > 0
    UNION ALL
    SELECT 3 AS rank, 'body_of_200' AS basis, body_bytes AS size
    FROM resource_rows
    WHERE status = 200 AND upper(method) = 'GET' AND body_bytes > 0
    UNION ALL
    SELECT 4 AS rank, 'total_minus_headers' AS basis,
           total_bytes - CAST(round(coalesce((SELECT header_bytes FROM header_only), $typical_header_bytes)) AS BIGINT) AS size
    FROM resource_rows
    WHERE status = 200 AND upper(method) = 'GET' AND total_bytes > 0
      AND body_bytes IS NULL AND content_length IS NULL
),
candidates AS (
    SELECT rank, basis, size, count(*) AS responses,
           row_number() OVER (PARTITION BY rank ORDER BY count(*) DESC, size DESC) AS k
    FROM observed
    WHERE size > 0
    GROUP BY rank, basis, size
)
SELECT c.size, c.basis, c.responses,
       CASE WHEN c.basis = 'total_minus_headers' THEN (SELECT responses FROM header_only) END AS header_samples
FROM candidates AS c
WHERE c.k = 1
ORDER BY c.rank
