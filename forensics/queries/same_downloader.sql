-- name: same_downloader
-- purpose: Suggested groups of addresses that are probably one downloader, each member with its own outcome, the group's outcome, and the rules and evidence that joined them.
-- params: (none)
SELECT
    g.resource_path,
    g.group_id,
    g.group_outcome,
    g.group_complete_by,
    g.group_coverage_pct,
    g.client_ip,
    g.outcome,
    g.coverage_pct,
    g.first_seen,
    (
        SELECT string_agg(DISTINCT l.rule, ', ' ORDER BY l.rule)
        FROM downloader_links AS l
        WHERE l.resource_path = g.resource_path AND (l.client_a = g.client_ip OR l.client_b = g.client_ip)
    ) AS joined_by,
    (
        SELECT string_agg(l.evidence, '; ' ORDER BY l.rule, l.client_a, l.client_b)
        FROM downloader_links AS l
        WHERE l.resource_path = g.resource_path AND (l.client_a = g.client_ip OR l.client_b = g.client_ip)
    ) AS evidence
FROM downloader_groups AS g
ORDER BY g.resource_path, g.group_id, g.first_seen, g.client_ip
