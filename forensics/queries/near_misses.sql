-- name: near_misses
-- purpose: Requests near the leaked resource that are not downloads of it (outside the window, other hosts, same folder, similar names), with counts.
-- params: kind (optional: resource_outside_window, resource_other_host, case_variant, double_encoded, same_folder, similar_name)
SELECT *
FROM near_misses
WHERE $kind::VARCHAR IS NULL OR kind = $kind::VARCHAR
ORDER BY resource_path, kind, requests DESC, path, status
