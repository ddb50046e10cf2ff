-- name: stage_resolve_clients
-- purpose: Write the resolved client of every hit from `client_map` (built by forensics.investigate from stage_client_addresses), issue 3 rule 3.
-- params: (none)
UPDATE hits
SET peer_ip = m.peer_ip,
    client_ip = m.client_ip,
    client_basis = m.client_basis,
    claimed_forwarded_for = m.claimed_forwarded_for,
    client_flags = m.client_flags
FROM requests AS r, client_map AS m
WHERE r.source_id = hits.source_id
  AND r.line_no = hits.line_no
  AND m.role = hits.role
  AND m.client_addr IS NOT DISTINCT FROM r.client_addr
  AND m.peer_addr IS NOT DISTINCT FROM r.peer_addr
  AND m.xff IS NOT DISTINCT FROM r.xff
