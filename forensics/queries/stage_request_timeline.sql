-- name: stage_request_timeline
-- purpose: Requests logged per bin of the report's timeline over the exposure window and margin, from every source, so the report draws its chart from this small table on whichever engine holds requests.
-- params: examine_from, examine_to, bin_us
-- writes: request_timeline (replace)
-- Bins run from the start of the margin, bin_us microseconds wide (forensics.coverage.timeline_bin);
-- a bin without requests has no row.
SELECT
    CAST(make_timestamp(epoch_us($examine_from::TIMESTAMPTZ) + bin * $bin_us) AS TIMESTAMPTZ) AS bin_start,
    count(*) AS requests
FROM (
    SELECT (epoch_us(ts) - epoch_us($examine_from::TIMESTAMPTZ)) // $bin_us AS bin
    FROM requests
    WHERE ts >= $examine_from::TIMESTAMPTZ AND ts < $examine_to::TIMESTAMPTZ
) AS binned
GROUP BY bin
