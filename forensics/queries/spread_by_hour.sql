-- name: spread_by_hour
-- purpose: Requests and downloads of the file per UTC hour and referring site over the exposure window and margin.
-- params: referer_site (optional)
SELECT resource_path, hour_start, referer_site, requests, deliveries, clients
FROM spread_hourly
WHERE $referer_site::VARCHAR IS NULL OR referer_site = $referer_site::VARCHAR
ORDER BY resource_path, hour_start, deliveries DESC, referer_site
