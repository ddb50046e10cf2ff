-- name: stage_client_lists
-- purpose: The sorted lists of distinct values (statuses, user agents, referrers, flags, claimed forwarded-for addresses) of one resource's clients whose key is from from_key (included) to to_key (excluded); NULL bounds are open.
-- params: resource_path, from_key, to_key
-- writes: client_lists (append)
-- A pass builds the lists of a share of the clients: the engine holds a list being built in memory
-- it cannot spill (DuckDB's list aggregate), so all of a million clients' lists at once could
-- exceed the memory it is given, however much it spills elsewhere. A client with no value of a
-- kind gets no list here and an empty one in `downloaders`.
SELECT
    resource_path,
    client_key,
    list_sort(list(value) FILTER (WHERE kind = 'status')) AS statuses,
    list_sort(list(value) FILTER (WHERE kind = 'user_agent')) AS user_agents,
    list_sort(list(value) FILTER (WHERE kind = 'referer')) AS referers,
    list_sort(list(value) FILTER (WHERE kind = 'client_flag')) AS client_flags,
    list_sort(list(value) FILTER (WHERE kind = 'claimed_forwarded_for')) AS claimed_forwarded_for
FROM client_values
WHERE resource_path = $resource_path
  AND ($from_key::VARCHAR IS NULL OR client_key >= $from_key::VARCHAR)
  AND ($to_key::VARCHAR IS NULL OR client_key < $to_key::VARCHAR)
GROUP BY resource_path, client_key
