-- name: stage_spread_hourly
-- purpose: Requests and deliveries of the resource per UTC hour and referring site over the exposure window and margin.
-- params: (none)
-- writes: spread_hourly (append)
SELECT
    resource_path,
    date_trunc('hour', ts) AS hour_start,
    referer_site,
    count(*) AS requests,
    sum(CASE WHEN delivered THEN 1 ELSE 0 END) AS deliveries,
    count(DISTINCT client_ip) AS clients
FROM spread_requests
GROUP BY resource_path, date_trunc('hour', ts), referer_site
