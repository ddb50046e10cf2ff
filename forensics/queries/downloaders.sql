-- name: downloaders
-- purpose: Who obtained the leaked file: one row per resource and resolved client, complete first, then partial, undetermined, failed and headers only, each by first seen.
-- params: outcome (optional: complete, partial, undetermined, failed or headers_only)
SELECT *
FROM downloaders
WHERE $outcome::VARCHAR IS NULL OR outcome = $outcome::VARCHAR
ORDER BY
    resource_path,
    CASE outcome WHEN 'complete' THEN 1 WHEN 'partial' THEN 2 WHEN 'undetermined' THEN 3 WHEN 'failed' THEN 4 ELSE 5 END,
    first_seen,
    client_ip
