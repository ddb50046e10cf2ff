-- name: spread_referrers
-- purpose: How the link spread: the referring pages of requests for the file in order of first appearance, agency or external, with the first address from each, requests, addresses and downloads.
-- params: (none)
SELECT resource_path, appearance, referer, referer_site, referer_kind, first_seen, last_seen, first_client,
       requests, clients, deliveries
FROM referrer_spread
ORDER BY resource_path, appearance
