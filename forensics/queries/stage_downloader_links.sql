-- name: stage_downloader_links
-- purpose: Pairs of downloader addresses that are probably one downloader, each with the rule that joined them and what it saw: same IPv6 prefix, same user agent and network within a short interval, byte ranges that continue each other across addresses. Suggestions only; no outcome changes.
-- params: agent_network_within_s, ranges_within_s, crowd_size
-- writes: downloader_links (append)
-- `client_facts` (client_ip, ipv6_prefix, agency) is written by forensics.followup over the distinct
-- downloader addresses (the IPv6 prefix of the case's [same_downloader] ipv6_prefix length).
-- Rules (each documented in the README, "Beyond the list"):
--   same_ipv6_prefix        both addresses in one IPv6 prefix: privacy addresses (RFC 8981) rotate
--                           inside the subscriber's prefix, so one device shows several addresses.
--                           Each address is linked to the prefix's first address (a star, not every
--                           pair): the group is the same and the links grow with the addresses.
--   same_agent_and_network  the same user agent from two addresses of one autonomous system within
--                           $agent_network_within_s seconds: a phone whose carrier gave it a new
--                           address, a laptop moving between access points. Crawlers and preview
--                           bots are left out: a fleet shares one agent and network by design. So
--                           is a crowd: an agent that more than $crowd_size addresses of one network
--                           sent (a common browser on a large carrier) says nothing of who is who,
--                           and pairing a crowd would grow with the square of its size.
--   complementary_ranges    a logged 206 range of one address starts on the byte after a logged 206
--                           range of the other ends, within $ranges_within_s seconds, with the same
--                           user agent, neither address is complete on its own, and none of the two
--                           addresses' ranges or full responses overlap: a download manager that
--                           resumed on another connection. Ranges of an agent that more than
--                           $crowd_size incomplete addresses sent (a browser's PDF viewer reading
--                           pages) are left out for the same reason.
-- Portable subset: joins, GROUP BY, CASE, UNION ALL; times compared in whole microseconds (epoch_us), exact on every engine.
WITH members AS (
    SELECT d.resource_path, d.client_ip, d.outcome, d.resource_size, f.ipv6_prefix, e.asn, e.as_org,
           coalesce(e.client_kind, 'unknown') AS client_kind
    FROM downloaders AS d
    JOIN client_facts AS f ON f.client_ip = d.client_ip
    LEFT JOIN ip_enrichment AS e ON e.address = d.client_ip
),
counted AS (
    SELECT h.resource_path, h.client_ip, h.ts, r.user_agent, r.status, upper(r.method) AS method,
           r.range_start, r.range_end
    FROM hits AS h
    JOIN hit_requests AS r ON r.source_id = h.source_id AND r.line_no = h.line_no
    WHERE h.counts
      AND h.window_position IN ('exposure', 'margin')
      AND h.client_ip IS NOT NULL
),
prefix_first AS (
    SELECT resource_path, ipv6_prefix, min(client_ip) AS first_ip
    FROM members
    WHERE ipv6_prefix IS NOT NULL
    GROUP BY resource_path, ipv6_prefix
),
prefix_pairs AS (
    SELECT m.resource_path, f.first_ip AS client_a, m.client_ip AS client_b,
           'same_ipv6_prefix' AS rule,
           'both in ' || m.ipv6_prefix AS evidence
    FROM members AS m
    JOIN prefix_first AS f
      ON f.resource_path = m.resource_path
     AND f.ipv6_prefix = m.ipv6_prefix
     AND f.first_ip < m.client_ip
),
-- Requests of ordinary clients with a known network: the join below is keyed on agent and network,
-- so its work grows with the clients that share both, not with every pair of clients.
agent_requests AS (
    SELECT c.resource_path, c.client_ip, c.ts, c.user_agent, m.asn, m.as_org
    FROM counted AS c
    JOIN members AS m ON m.resource_path = c.resource_path AND m.client_ip = c.client_ip
    WHERE m.asn IS NOT NULL
      AND m.client_kind NOT IN ('crawler', 'link_preview')
      AND c.user_agent IS NOT NULL
      AND c.user_agent NOT IN ('', '-')
),
agent_crowds AS (
    SELECT resource_path, asn, user_agent
    FROM agent_requests
    GROUP BY resource_path, asn, user_agent
    HAVING count(DISTINCT client_ip) > $crowd_size
),
networked AS (
    SELECT r.*
    FROM agent_requests AS r
    LEFT JOIN agent_crowds AS k
      ON k.resource_path = r.resource_path AND k.asn = r.asn AND k.user_agent = r.user_agent
    WHERE k.asn IS NULL
),
agent_pairs AS (
    SELECT x.resource_path, x.client_ip AS client_a, y.client_ip AS client_b,
           'same_agent_and_network' AS rule,
           'AS' || CAST(min(x.asn) AS STRING) || ' ' || coalesce(min(x.as_org), '')
               || ', user agent ' || min(x.user_agent) AS evidence
    FROM networked AS x
    JOIN networked AS y
      ON y.resource_path = x.resource_path
     AND y.asn = x.asn
     AND y.user_agent = x.user_agent
     AND x.client_ip < y.client_ip
    WHERE abs(epoch_us(x.ts) - epoch_us(y.ts)) <= CAST(round($agent_network_within_s * 1000000) AS BIGINT)
    GROUP BY x.resource_path, x.client_ip, y.client_ip
),
-- Logged ranges of addresses that are not complete on their own (a complete copy needs no
-- complement; leaving them out keeps the candidate pairs few when many clients split alike).
all_ranged AS (
    SELECT c.resource_path, c.client_ip, c.ts, c.user_agent, c.range_start, c.range_end
    FROM counted AS c
    JOIN members AS m ON m.resource_path = c.resource_path AND m.client_ip = c.client_ip
    WHERE c.status = 206 AND c.method <> 'HEAD' AND c.range_start IS NOT NULL AND c.range_end IS NOT NULL
      AND m.outcome <> 'complete'
),
range_crowds AS (
    SELECT resource_path, user_agent
    FROM all_ranged
    GROUP BY resource_path, user_agent
    HAVING count(DISTINCT client_ip) > $crowd_size
),
ranged AS (
    SELECT r.*
    FROM all_ranged AS r
    LEFT JOIN range_crowds AS k ON k.resource_path = r.resource_path AND k.user_agent = r.user_agent
    WHERE k.resource_path IS NULL
),
-- Everything an address received whose place in the file is known: logged ranges and full 200s.
placed AS (
    SELECT resource_path, client_ip, range_start AS first_byte, range_end AS last_byte FROM ranged
    UNION ALL
    SELECT c.resource_path, c.client_ip, 0 AS first_byte, m.resource_size - 1 AS last_byte
    FROM counted AS c
    JOIN members AS m ON m.resource_path = c.resource_path AND m.client_ip = c.client_ip
    WHERE c.status = 200 AND c.method <> 'HEAD'
),
adjacent AS (
    SELECT x.resource_path, x.client_ip AS earlier, y.client_ip AS later, x.ts AS earlier_ts, y.ts AS later_ts,
           'bytes ' || CAST(x.range_start AS STRING) || '-' || CAST(x.range_end AS STRING) || ' from '
               || x.client_ip || ', then ' || CAST(y.range_start AS STRING) || '-'
               || CAST(y.range_end AS STRING) || ' from ' || y.client_ip || ', same user agent' AS evidence
    FROM ranged AS x
    JOIN ranged AS y
      ON y.resource_path = x.resource_path
     AND y.range_start = x.range_end + 1
     AND y.user_agent = x.user_agent
     AND y.client_ip <> x.client_ip
    WHERE abs(epoch_us(x.ts) - epoch_us(y.ts)) <= CAST(round($ranges_within_s * 1000000) AS BIGINT)
),
-- Pairs whose received bytes overlap somewhere, checked only for the adjacent candidates.
overlapping AS (
    SELECT DISTINCT a.resource_path, a.earlier, a.later
    FROM (SELECT DISTINCT resource_path, earlier, later FROM adjacent) AS a
    JOIN placed AS px ON px.resource_path = a.resource_path AND px.client_ip = a.earlier
    JOIN placed AS py ON py.resource_path = a.resource_path AND py.client_ip = a.later
    WHERE px.first_byte <= py.last_byte AND py.first_byte <= px.last_byte
),
continued AS (
    SELECT a.resource_path, a.earlier, a.later, a.evidence
    FROM adjacent AS a
    LEFT JOIN overlapping AS o
      ON o.resource_path = a.resource_path AND o.earlier = a.earlier AND o.later = a.later
    WHERE o.earlier IS NULL
),
range_pairs AS (
    SELECT resource_path,
           CASE WHEN earlier < later THEN earlier ELSE later END AS client_a,
           CASE WHEN earlier < later THEN later ELSE earlier END AS client_b,
           'complementary_ranges' AS rule,
           min(evidence) AS evidence
    FROM continued
    GROUP BY resource_path,
             CASE WHEN earlier < later THEN earlier ELSE later END,
             CASE WHEN earlier < later THEN later ELSE earlier END
),
pairs AS (
    SELECT * FROM prefix_pairs
    UNION ALL
    SELECT * FROM agent_pairs
    UNION ALL
    SELECT * FROM range_pairs
),
-- How far apart the two addresses' nearest counted requests are: both addresses' requests of a
-- pair in one time order; the nearest two of different addresses are next to each other in it.
-- (Joining a's requests to b's directly let the planner pair every request of a resource with
-- every other before narrowing to the pair: a trillion rows at a million requests.)
pair_keys AS (
    SELECT DISTINCT resource_path, client_a, client_b FROM pairs
),
pair_requests AS (
    SELECT p.resource_path, p.client_a, p.client_b, 0 AS side, epoch_us(c.ts) AS ts_us
    FROM pair_keys AS p
    JOIN counted AS c ON c.resource_path = p.resource_path AND c.client_ip = p.client_a
    UNION ALL
    SELECT p.resource_path, p.client_a, p.client_b, 1 AS side, epoch_us(c.ts) AS ts_us
    FROM pair_keys AS p
    JOIN counted AS c ON c.resource_path = p.resource_path AND c.client_ip = p.client_b
),
pair_sequence AS (
    SELECT resource_path, client_a, client_b, side, ts_us,
           max(side) OVER (
               PARTITION BY resource_path, client_a, client_b ORDER BY ts_us, side
               ROWS BETWEEN 1 PRECEDING AND 1 PRECEDING
           ) AS side_before,
           max(ts_us) OVER (
               PARTITION BY resource_path, client_a, client_b ORDER BY ts_us, side
               ROWS BETWEEN 1 PRECEDING AND 1 PRECEDING
           ) AS ts_us_before
    FROM pair_requests
),
gaps AS (
    SELECT resource_path, client_a, client_b,
           CAST(min(ts_us - ts_us_before) AS DOUBLE) / 1000000 AS seconds_apart
    FROM pair_sequence
    WHERE side_before IS NOT NULL AND side_before <> side
    GROUP BY resource_path, client_a, client_b
)
SELECT p.resource_path, p.client_a, p.client_b, p.rule, p.evidence, g.seconds_apart
FROM pairs AS p
LEFT JOIN gaps AS g
  ON g.resource_path = p.resource_path AND g.client_a = p.client_a AND g.client_b = p.client_b
