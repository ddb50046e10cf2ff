-- name: stage_client_list_bounds
-- purpose: Client keys that cut one resource's clients (in key order) into passes of about clients_per_pass clients each: a pass builds the lists of the clients from one bound (included) to the next (excluded).
-- params: resource_path, clients_per_pass
-- writes: none (rows for forensics.investigate)
SELECT client_key
FROM (
    SELECT client_key, row_number() OVER (ORDER BY client_key) AS n
    FROM (SELECT DISTINCT client_key FROM client_values WHERE resource_path = $resource_path) AS clients
) AS numbered
WHERE n % $clients_per_pass = 0
ORDER BY client_key
