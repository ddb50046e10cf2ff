-- name: stage_resolve_clients
-- purpose: The hits with their resolved client from `client_map` (built by forensics.investigate from stage_client_addresses), issue 3 rule 3.
-- params: (none)
-- writes: hits (replace)
-- client_map holds every distinct combination of the hits, once, so each hit finds exactly one row.
SELECT
    h.source_id, h.line_no, h.resource_path, h.role, h.ts, h.match_how, h.window_position,
    m.peer_ip,
    m.client_ip,
    m.client_basis,
    m.claimed_forwarded_for,
    m.client_flags,
    h.linked_source_id, h.linked_line_no, h.linked_by, h.counts
FROM hits AS h
JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
LEFT JOIN client_map AS m
  ON m.role = h.role
 AND m.client_addr IS NOT DISTINCT FROM r.client_addr
 AND m.peer_addr IS NOT DISTINCT FROM r.peer_addr
 AND m.xff IS NOT DISTINCT FROM r.xff
