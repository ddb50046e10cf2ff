-- name: stage_client_value_size
-- purpose: How many clients have values in client_values for one resource, and about how many bytes their lists will hold (characters, plus a list entry's own cost), so that the lists are built in passes that fit the memory the engine is given.
-- params: resource_path
-- writes: none (rows for forensics.investigate)
SELECT count(DISTINCT client_key) AS clients, coalesce(sum(length(value) + 32), 0) AS list_bytes
FROM client_values
WHERE resource_path = $resource_path
