-- name: crawler_removals
-- purpose: Crawlers, archives and link-preview bots that requested the file, whether their claim is verified, and where their operator takes removal or refresh requests (with the page that documents it).
-- params: (none)
SELECT resource_path, client_ip, crawler, client_kind, verified, outcome, first_seen, requests,
       operator, removal_url, removal_note, removal_source
FROM crawler_fetches
ORDER BY resource_path, first_seen, client_ip
