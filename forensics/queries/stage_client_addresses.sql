-- name: stage_client_addresses
-- purpose: The distinct (role, logged client, peer, X-Forwarded-For) combinations among the hits, so the real client is resolved once per combination, not once per request.
-- params: (none)
-- writes: none (rows for forensics.investigate)
SELECT DISTINCT h.role, r.client_addr, r.peer_addr, r.xff
FROM hits AS h
JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
