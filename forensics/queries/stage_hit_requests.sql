-- name: stage_hit_requests
-- purpose: Copy the requests rows of every hit once, so that the later stages read these few rows instead of joining the whole requests table again.
-- params: (none)
-- writes: hit_requests (replace)
-- A request that is a hit for two resources is copied once.
SELECT r.*
FROM requests AS r
WHERE EXISTS (SELECT 1 FROM hits AS h WHERE h.source_id = r.source_id AND h.line_no = r.line_no)
