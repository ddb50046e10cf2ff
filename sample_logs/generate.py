#!/usr/bin/env python3
"""Write the seeded demo incident in this folder: CloudFront standard logs, origin nginx logs,
case.toml, SCENARIO.md and expected_downloaders.csv.

    python3 sample_logs/generate.py

Standard library only, Python 3.11. The output is byte-identical on every run: one seeded
random.Random per component, gzip with mtime=0, no clock, no set iteration.

The story: www.agency.gov is served by CloudFront distribution E2DEMO7EXAMPLE
(d3abc.cloudfront.net) in front of an nginx origin. On Monday 2022-11-28 (America/New_York,
UTC-5) a news post published at 14:02 linked a spreadsheet of asylum seekers,
/sites/default/files/documents/2022/detention-roster.xlsx (1572864 bytes), by mistake. It was
deleted and the folder invalidated in CloudFront at 19:05 (00:05 UTC on the 29th).

ACTORS below is the single source of truth for every client that touched the leaked file: the
generator turns it into log lines, re-reads the written logs to re-derive each client's outcome,
checks that it matches the intended one, and writes SCENARIO.md from the same table.

CloudFront field rules follow AWS's "Standard logs (access logs)" documentation: 33
tab-separated fields, UTC, whole seconds, '-' for empty, RFC 1738 style percent-encoding of
characters 0-32, 127+ and < > " # % { } | \\ ^ ~ [ ] ` ' (so a '%' in the request becomes '%25').
nginx rules follow log_format main and ngx_http_log_module escaping (" \\ and bytes outside
0x20-0x7E as \\xHH).
"""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import itertools
import random
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

SEED = 20221128
HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# The case
# --------------------------------------------------------------------------------------------
SITE_HOST = "www.agency.gov"
CF_HOST = "d3abc.cloudfront.net"
DIST_ID = "E2DEMO7EXAMPLE"
LEAK = "/sites/default/files/documents/2022/detention-roster.xlsx"
LEAK_SIZE = 1572864
LEAK_DIR = "/sites/default/files/documents/2022/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NEWS_PAGE = "/news/2022/11/detention-oversight-report-released"
NEWS_URL = f"https://{SITE_HOST}{NEWS_PAGE}"

EST = timezone(timedelta(hours=-5), "EST")  # America/New_York on 2022-11-28 (no DST change)
WINDOW_START = datetime(2022, 11, 28, 14, 2, 0, tzinfo=EST).timestamp()
WINDOW_END = datetime(2022, 11, 28, 19, 5, 0, tzinfo=EST).timestamp()
MARGIN = 30 * 60
INVALIDATION = WINDOW_END  # file deleted and /sites/default/files/documents/2022/* invalidated
LOG_START = datetime(2022, 11, 28, 5, 0, 0, tzinfo=UTC).timestamp()  # local midnight
LOG_END = datetime(2022, 11, 29, 7, 0, 0, tzinfo=UTC).timestamp()  # 02:00 local on the 29th
ROTATION = datetime(2022, 11, 29, 0, 0, 0, tzinfo=EST).timestamp()  # logrotate at local midnight

# CloudFront's origin-facing ranges (the case's trusted proxies) and the NLB health checkers.
CF_ORIGIN_NETS = ["130.176.0.0/16", "64.252.64.0/18"]
HEALTH_CHECKERS = ["10.0.12.34", "10.0.47.201"]

# --------------------------------------------------------------------------------------------
# User agents (late-2022 versions)
# --------------------------------------------------------------------------------------------
CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.0.0 Safari/537.36"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/107.0.0.0 Safari/537.36"
)
EDGE_WIN = CHROME_WIN + " Edg/107.0.1418.56"
FIREFOX_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:107.0) Gecko/20100101 Firefox/107.0"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:107.0) Gecko/20100101 Firefox/107.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.1 Safari/605.1.15"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_1_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.1 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.0.0 Mobile Safari/537.36"
)
SAMSUNG = (
    "Mozilla/5.0 (Linux; Android 12; SAMSUNG SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/19.0 Chrome/102.0.5005.125 Mobile Safari/537.36"
)
TWITTER_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 Twitter for iPhone/9.32"
)
FB_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_1_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone13,2;FBMD/iPhone;FBSN/iOS;"
    "FBSV/16.1.1;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]"
)
YABROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/106.0.0.0 YaBrowser/22.11.0.2419 Yowser/2.5 Safari/537.36"
)
WECHAT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.30(0x18001e2f) NetType/4G Language/zh_CN"
)
TOR_BROWSER = "Mozilla/5.0 (Windows NT 10.0; rv:102.0) Gecko/20100101 Firefox/102.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMART = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/107.0.5304.115 Mobile Safari/537.36 (compatible; "
    "Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
AHREFS = "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"
SEMRUSH = "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)"
YANDEX = "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"
APPLEBOT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"
)
FACEBOOK = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
TWITTERBOT = "Twitterbot/1.0"
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
UPTIMEROBOT = "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"
CURL_786 = "curl/7.86.0"
CURL_781 = "curl/7.81.0"
WGET = "Wget/1.21.3"
WGET_OLD = "Wget/1.21.2"
PY_REQUESTS = "python-requests/2.28.1"
GO_HTTP = "Go-http-client/1.1"
ARIA2 = "aria2/1.36.0"
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:107.0) Gecko/20100101 Firefox/107.0"
SAMSUNG_S22 = (
    "Mozilla/5.0 (Linux; Android 13; SM-S901U) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/19.0 Chrome/102.0.5005.125 Mobile Safari/537.36"
)
ARCHIVE_BOT = (
    "Mozilla/5.0 (compatible; archive.org_bot; Wayback Machine Live Record; "
    "+http://archive.org/details/archive.org_bot)"
)
CENSYS = "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)"
ZGRAB = "Mozilla/5.0 zgrab/0.x"
EXPANSE = (
    "Expanse, a Palo Alto Networks company, searches across the global IPv4 space multiple "
    "times per day to identify customers&#39; presences on the Internet. If you would like to "
    "be excluded from our scans, please send IP addresses/domains to: scaninfo@paloaltonetworks.com"
)
XSS_PROBE = 'Mozilla/5.0 (compatible; scanner) "><script>alert(1)</script>'  # nginx: \x22
ELB = "ELB-HealthChecker/2.0"

COMPLETE, PARTIAL, FAILED, HEADERS_ONLY, NEAR_MISS = ("complete", "partial", "failed", "headers_only", "near_miss")


# --------------------------------------------------------------------------------------------
# The actors around the leaked file. Times are local (EST, 2022-11-28) and are the times the
# edge finished the response (CloudFront's `time`) or nginx logged the line (direct requests).
# --------------------------------------------------------------------------------------------
@dataclass
class Step:
    local: str  # HH:MM:SS local
    via: str = "cdn"  # "cdn" (edge, maybe origin) or "direct" (origin only)
    method: str = "GET"
    path: str = LEAK  # as the client sent it (may contain %xx)
    query: str = ""
    pop: str = ""
    proto: str = "https"
    host: str = SITE_HOST  # Host header the viewer sent (x-host-header)
    byte_range: tuple[int, int] | None = None
    conditional: bool = False  # If-Modified-Since that matches: 304
    abort_at: int | None = None  # viewer hung up after this many body bytes
    origin_status: int | None = None  # force the origin's answer (503 from limit_req)
    referer: str = ""
    late: bool = False  # CloudFront delivers the record in the next hour's file
    expect: str = ""  # x-edge-result-type the cache must produce (checked)
    status: str = ""  # status at the edge (cdn) or at the origin (direct) (checked)


@dataclass
class Actor:
    key: str
    addr: str
    network: str
    ua: str
    outcome: str
    story: str
    steps: list[Step]
    http: str = "HTTP/2.0"
    xff: str = ""  # X-Forwarded-For the client itself sent
    prelude: tuple[str, str, str] | None = None  # (page, local time, referer) viewed before
    # One person behind several addresses (the follow-up's "likely the same downloader" groups).
    person: str = ""
    # Actors added after the demo's first release draw their random details (ports, header sizes,
    # request ids, origin delays, order in the file) from their own seeded stream, so adding them
    # leaves every other line of the demo byte-identical.
    own_stream: bool = False
    agency: bool = False  # the agency's own address: not an outsider in the spread of the link
    bot: bool = False  # a crawler, archive or preview bot by its user agent


S = Step
ACTORS: list[Actor] = [
    Actor(
        "contractor",
        "50.206.37.114",
        "Comcast Business, US",
        CHROME_WIN,
        NEAR_MISS,
        "Web contractor tried the link before the upload. Both 404s are before 13:32 "
        "(window start minus margin): near misses, not in the list.",
        [
            S("12:58:09", pop="IAD89-C1", expect="Error", status="404"),
            S("13:04:51", pop="IAD89-C1", expect="Error", status="404"),
        ],
    ),
    Actor(
        "agency_editor",
        "4.31.166.20",
        "agency HQ egress (Lumen business circuit), US",
        CHROME_WIN,
        COMPLETE,
        "Agency editor: a 404 at 13:47 (inside the margin, before upload), then the first copy "
        "after publishing, referer the agency news post. First cache fill at IAD89-C1.",
        [
            S("13:47:22", pop="IAD89-C1", expect="Error", status="404", referer=f"https://{SITE_HOST}/node/4812/edit"),
            S("14:03:17", pop="IAD89-C1", expect="Miss", status="200", referer=NEWS_URL),
        ],
        prelude=(NEWS_PAGE, "14:03:02", f"https://{SITE_HOST}/node/4812/edit"),
        agency=True,
    ),
    Actor(
        "googlebot",
        "66.249.66.83",
        "Google LLC (genuine Googlebot range 66.249.64.0/19), US",
        GOOGLEBOT,
        COMPLETE,
        "Genuine Googlebot (forward-confirmed range) fetched the file.",
        [S("14:21:09", pop="SFO53-C1", expect="Miss", status="200")],
        http="HTTP/1.1",
        bot=True,
    ),
    Actor(
        "slackbot",
        "54.209.87.143",
        "Amazon AWS us-east-1 (Slack link expander), US",
        SLACKBOT,
        HEADERS_ONLY,
        "Slack link preview: HEAD only. sc-content-len shows 1572864 (the Content-Length header) but no body was sent.",
        [S("14:52:30", method="HEAD", pop="IAD89-C1", expect="Hit", status="200")],
        http="HTTP/1.1",
        bot=True,
    ),
    Actor(
        "reddit_v6",
        "2a02:908:1a3:4e00:9c1d:7f2b:33e1:5a02",
        "Vodafone Kabel Deutschland (IPv6), DE",
        FIREFOX_LINUX,
        COMPLETE,
        "IPv6 viewer from a reddit link. Cache fill at FRA56-P5; origin XFF is the IPv6 address.",
        [S("15:12:40", pop="FRA56-P5", expect="Miss", status="200", referer="https://www.reddit.com/")],
    ),
    Actor(
        "orange_304",
        "90.63.211.45",
        "Orange S.A. residential, FR",
        SAFARI_MAC,
        COMPLETE,
        "Downloaded the file, then revalidated it later (If-Modified-Since, 304). Stays complete.",
        [
            S("15:25:10", pop="CDG50-C1", expect="Miss", status="200", referer="https://www.google.fr/"),
            S("18:40:02", pop="CDG50-C1", conditional=True, expect="Hit", status="304"),
        ],
    ),
    Actor(
        "aria2_ranges",
        "99.231.84.160",
        "Rogers Communications residential, CA",
        ARIA2,
        COMPLETE,
        "Download manager, three 206 ranges that together cover bytes 0-1572863. The first "
        "range was a cache miss, so the origin sent CloudFront a full 200.",
        [
            S("15:36:20", pop="YTO50-C1", byte_range=(0, 524287), expect="Miss", status="206"),
            S("15:36:21", pop="YTO50-C1", byte_range=(524288, 1048575), expect="Hit", status="206"),
            S("15:36:21", pop="YTO50-C1", byte_range=(1048576, 1572863), expect="Hit", status="206"),
        ],
        http="HTTP/1.1",
    ),
    Actor(
        "iran_tco",
        "2.182.47.139",
        "Telecommunication Company of Iran (TCI) residential, IR",
        CHROME_ANDROID,
        COMPLETE,
        "Arrived from a t.co (Twitter) link.",
        [S("15:58:14", pop="FRA56-P5", expect="Hit", status="200", referer="https://t.co/Xk3mQ9vR2L")],
    ),
    Actor(
        "utm_query",
        "172.58.143.206",
        "T-Mobile USA mobile, US",
        TWITTER_IPHONE,
        COMPLETE,
        "Twitter in-app browser with a tracking query; query strings are not part of the cache "
        "key under /sites/default/files/*, so a Hit.",
        [S("16:05:55", pop="IAD89-C1", query="utm_source=twitter&utm_medium=social", expect="Hit", status="200")],
    ),
    Actor(
        "google_ref",
        "100.36.117.42",
        "Verizon Fios residential, US",
        EDGE_WIN,
        COMPLETE,
        "Came from a Google search result.",
        [S("16:10:31", pop="IAD89-C1", expect="Hit", status="200", referer="https://www.google.com/")],
    ),
    Actor(
        "direct_curl",
        "95.216.142.33",
        "Hetzner Online (cloud, Helsinki), FI",
        CURL_786,
        COMPLETE,
        "Went around the CDN to the origin's public address: only in the origin log, "
        "remote_addr is the client, XFF '-'.",
        [S("16:12:03", via="direct", status="200")],
        http="HTTP/1.1",
    ),
    Actor(
        "archive_org",
        "207.241.225.14",
        "Internet Archive (Wayback Machine), US",
        ARCHIVE_BOT,
        COMPLETE,
        "Someone asked the Wayback Machine to save the link: the Internet Archive's crawler fetched "
        "the file, so a copy sits in the archive until the agency asks for its removal.",
        [S("16:20:40", pop="SFO53-C1", expect="Hit", status="200")],
        http="HTTP/1.1",
        own_stream=True,
        bot=True,
    ),
    Actor(
        "russia",
        "95.24.117.203",
        "PJSC VimpelCom (Beeline) residential, RU",
        YABROWSER,
        COMPLETE,
        "Yandex Browser, referer yandex.ru.",
        [S("16:27:51", pop="FRA56-P5", expect="Hit", status="200", referer="https://yandex.ru/")],
    ),
    Actor(
        "origin_503",
        "99.101.12.45",
        "AT&T Internet residential, US",
        CHROME_MAC,
        FAILED,
        "Cache miss at ORD58-P3 while the origin's limit_req rejected it: 503 at origin and "
        "edge, no body bytes of the file.",
        [S("16:31:07", pop="ORD58-P3", origin_status=503, expect="Error", status="503")],
    ),
    Actor(
        "china",
        "117.136.38.92",
        "China Mobile (mobile), CN",
        WECHAT,
        COMPLETE,
        "WeChat in-app browser. Cache fill at NRT57-P2.",
        [S("16:44:09", pop="NRT57-P2", expect="Miss", status="200")],
    ),
    Actor(
        "v6_rotating_a",
        "2601:14d:8300:7a20:d4c3:91ff:2b17:6e05",
        "Comcast Cable residential (IPv6), US",
        FIREFOX_MAC,
        PARTIAL,
        "Came from Hacker News; the connection dropped after 401408 bytes (CloudFront 000) when the "
        "laptop's IPv6 privacy address rotated. Partial on its own; the next row is the same laptop.",
        [S("16:48:12", pop="ORD58-P3", abort_at=401408, expect="Error", status="000",
           referer="https://news.ycombinator.com/")],
        person="comcast_laptop",
        own_stream=True,
    ),
    Actor(
        "v6_rotating_b",
        "2601:14d:8300:7a20:8e1:5ab2:7f40:c39d",
        "Comcast Cable residential (IPv6), US",
        FIREFOX_MAC,
        COMPLETE,
        "The same laptop 3 minutes later with its new privacy address in the same /64: a full copy "
        "(the edge had cached the file on the first, cut-short request).",
        [S("16:51:40", pop="ORD58-P3", expect="Hit", status="200", referer="https://news.ycombinator.com/")],
        person="comcast_laptop",
        own_stream=True,
    ),
    Actor(
        "forged_xff",
        "159.203.88.24",
        "DigitalOcean (cloud, New York), US",
        PY_REQUESTS,
        COMPLETE,
        "Sent a forged 'X-Forwarded-For: 203.0.113.77'. CloudFront's x-forwarded-for column shows "
        "203.0.113.77, the origin's XFF is '203.0.113.77, 159.203.88.24'. The downloader is "
        "159.203.88.24; 203.0.113.77 must never be listed.",
        [S("16:58:02", pop="JFK50-P3", expect="Miss", status="200")],
        http="HTTP/1.1",
        xff="203.0.113.77",
    ),
    Actor(
        "pct_encoded",
        "83.45.120.77",
        "Telefonica de Espana residential, ES",
        CHROME_WIN,
        COMPLETE,
        "Requested /sites/default/files/documents/2022/detention%2Droster.xlsx. CloudFront logs "
        "the '%' as %25 (cs-uri-stem ...detention%252Droster.xlsx); the origin line has the raw "
        "%2D. The encoded path is a separate cache key, hence a Miss.",
        [
            S(
                "17:08:30",
                pop="MAD51-C3",
                path="/sites/default/files/documents/2022/detention%2Droster.xlsx",
                expect="Miss",
                status="200",
            )
        ],
    ),
    Actor(
        "bt_news",
        "86.150.213.77",
        "British Telecommunications residential, GB",
        SAFARI_MAC,
        COMPLETE,
        "Read the news post, then clicked the link (agency page referer).",
        [S("17:21:33", pop="LHR62-C2", expect="Miss", status="200", referer=NEWS_URL)],
        prelude=(NEWS_PAGE, "17:20:58", "https://www.google.co.uk/"),
    ),
    Actor(
        "softbank_304",
        "126.117.34.201",
        "SoftBank residential, JP",
        SAFARI_IPHONE,
        HEADERS_ONLY,
        "A conditional request answered 304 with no earlier copy from this address: headers only.",
        [S("17:30:12", pop="NRT57-P2", conditional=True, expect="Hit", status="304")],
    ),
    Actor(
        "direct_499",
        "3.89.217.64",
        "Amazon AWS EC2 us-east-1 (cloud), US",
        WGET_OLD,
        PARTIAL,
        "Went around the CDN and gave up: nginx 499 after 312000 body bytes.",
        [S("17:33:40", via="direct", abort_at=312000, status="499")],
        http="HTTP/1.1",
    ),
    Actor(
        "split_home",
        "90.214.17.88",
        "Sky Broadband residential, GB",
        ARIA2,
        PARTIAL,
        "aria2 on a laptop fetched the first half (bytes 0-786431) over home Wi-Fi, then the Wi-Fi "
        "dropped. Partial on its own.",
        [S("17:40:05", pop="LHR62-C2", byte_range=(0, 786431), expect="Hit", status="206")],
        http="HTTP/1.1",
        person="aria2_laptop",
        own_stream=True,
    ),
    Actor(
        "split_mobile",
        "31.94.7.201",
        "EE mobile (phone hotspot), GB",
        ARIA2,
        PARTIAL,
        "The same aria2 resumed over the phone's hotspot with the second half (786432-1572863). "
        "Partial on its own; with the previous row the two ranges make a complete copy.",
        [S("17:46:31", pop="LHR62-C2", byte_range=(786432, 1572863), expect="Hit", status="206")],
        http="HTTP/1.1",
        person="aria2_laptop",
        own_stream=True,
    ),
    Actor(
        "overlap_ranges",
        "102.89.34.118",
        "MTN Nigeria (mobile), NG",
        SAMSUNG,
        PARTIAL,
        "Two overlapping 206 ranges (0-999999 and 500000-1200000) that leave 1200001-1572863 "
        "missing. The first was a cache miss, so the origin log shows a full 200 to CloudFront: "
        "the edge decides what the viewer got.",
        [
            S("17:52:10", pop="LOS50-C1", byte_range=(0, 999999), expect="Miss", status="206"),
            S("17:55:47", pop="LOS50-C1", byte_range=(500000, 1200000), expect="Hit", status="206"),
        ],
    ),
    Actor(
        "fake_googlebot",
        "51.178.93.214",
        "OVH SAS (cloud, Gravelines), FR",
        GOOGLEBOT,
        COMPLETE,
        "Googlebot user agent from a cloud address (not Google's), using the "
        "d3abc.cloudfront.net host name (x-host-header).",
        [S("18:05:44", pop="FRA56-P5", host=CF_HOST, expect="Hit", status="200")],
        http="HTTP/1.1",
        bot=True,
    ),
    Actor(
        "cgnat_a",
        "172.56.21.7",
        "T-Mobile USA mobile (carrier-grade NAT), US",
        SAMSUNG_S22,
        PARTIAL,
        "A phone from a Facebook post; the download broke off after 210000 bytes (000) when the "
        "carrier moved it to another shared address. Partial on its own.",
        [S("18:10:02", pop="DFW56-P1", abort_at=210000, expect="Error", status="000",
           referer="https://lm.facebook.com/")],
        person="tmobile_phone",
        own_stream=True,
    ),
    Actor(
        "cgnat_b",
        "172.58.97.140",
        "T-Mobile USA mobile (carrier-grade NAT), US",
        SAMSUNG_S22,
        COMPLETE,
        "The same phone 2 minutes later from another T-Mobile address, same browser: a full copy.",
        [S("18:12:48", pop="DFW56-P1", expect="Hit", status="200", referer="https://lm.facebook.com/")],
        person="tmobile_phone",
        own_stream=True,
    ),
    Actor(
        "cut_short_000",
        "177.38.212.90",
        "Brasil Telecom/Oi residential, BR",
        CHROME_WIN,
        PARTIAL,
        "Viewer hung up: CloudFront sc-status 000 with 655360 body bytes (sc-bytes), while "
        "sc-content-len keeps the Content-Length header 1572864. Cache miss, so the origin log "
        "shows a full 200 1572864 to CloudFront. Partial.",
        [S("18:14:33", pop="GRU3-C1", abort_at=655360, expect="Error", status="000")],
    ),
    Actor(
        "double_encoded",
        "46.211.77.5",
        "Kyivstar (mobile), UA",
        CHROME_ANDROID,
        COMPLETE,
        "First used a double-encoded link (detention%252Droster.xlsx, cs-uri-stem "
        "detention%25252Droster.xlsx): nginx decodes once, finds no file named "
        "'detention%2Droster.xlsx', 404. That request is not the resource. Then fetched the real "
        "path. Complete either way.",
        [
            S(
                "18:22:10",
                pop="WAW51-P2",
                path="/sites/default/files/documents/2022/detention%252Droster.xlsx",
                expect="Error",
                status="404",
            ),
            S("18:23:02", pop="WAW51-P2", expect="Miss", status="200"),
        ],
    ),
    Actor(
        "scraper",
        "65.108.75.12",
        "Hetzner Online (cloud, Helsinki), FI",
        WGET,
        COMPLETE,
        "Scraper: http folder listing redirected to https (301, edge only), folder listing 403, "
        "similar names 404 (detention-roster.xls, detention_roster.xlsx, upper-cased "
        "Detention-Roster.xlsx), then the real file.",
        [
            S("18:31:00", pop="HEL51-P1", proto="http", path=LEAK_DIR, expect="Redirect", status="301"),
            S("18:31:01", pop="HEL51-P1", path=LEAK_DIR, expect="Error", status="403"),
            S("18:31:02", pop="HEL51-P1", path=LEAK_DIR + "detention-roster.xls", expect="Error", status="404"),
            S("18:31:03", pop="HEL51-P1", path=LEAK_DIR + "detention_roster.xlsx", expect="Error", status="404"),
            S("18:31:05", pop="HEL51-P1", path=LEAK_DIR + "Detention-Roster.xlsx", expect="Error", status="404"),
            S("18:31:07", pop="HEL51-P1", expect="Miss", status="200"),
        ],
        http="HTTP/1.1",
    ),
    Actor(
        "corporate_proxy",
        "12.151.77.30",
        "AT&T business (corporate web proxy), US",
        CHROME_WIN,
        COMPLETE,
        "Behind a corporate proxy: c-ip is the proxy, x-forwarded-for is the private 10.44.3.19. "
        "The proxy is not trusted, so the address to report is 12.151.77.30.",
        [S("18:48:30", pop="JFK50-P3", expect="Hit", status="200")],
        http="HTTP/1.1",
        xff="10.44.3.19",
    ),
    Actor(
        "tor_late",
        "185.220.101.47",
        "Tor exit relay (Foundation for Applied Privacy range), DE",
        TOR_BROWSER,
        COMPLETE,
        "Tor Browser. Happened at 23:57:41 UTC but CloudFront delivered the record late, in the "
        "E2DEMO7EXAMPLE.2022-11-29-00 file.",
        [S("18:57:41", pop="FRA56-P5", expect="Hit", status="200", late=True)],
    ),
    Actor(
        "after_removal_v6",
        "2607:fb90:2c4a:81e3:5d1:9e2f:44a0:1b7c",
        "T-Mobile USA (IPv6 mobile), US",
        SAFARI_IPHONE,
        FAILED,
        "Tried after removal (00:06:40 UTC on the 29th, file 2022-11-29-00): 404.",
        [S("19:06:40", pop="IAD89-C1", expect="Error", status="404", referer="https://t.co/Xk3mQ9vR2L")],
    ),
    Actor(
        "after_removal_tr",
        "78.171.20.99",
        "Turk Telekom (TTNet) residential, TR",
        CHROME_WIN,
        FAILED,
        "Tried after removal, inside the margin: 404.",
        [S("19:19:12", pop="FRA56-P5", expect="Error", status="404")],
    ),
    Actor(
        "after_removal_in",
        "49.36.183.7",
        "Reliance Jio (mobile), IN",
        CHROME_ANDROID,
        FAILED,
        "Tried after removal, 2 minutes before the margin ends (19:35): 404.",
        [S("19:33:05", pop="BOM78-P1", expect="Error", status="404")],
    ),
    Actor(
        "too_late",
        "73.209.150.12",
        "Comcast Cable residential, US",
        FIREFOX_WIN,
        NEAR_MISS,
        "Tried at 19:50, after window end plus margin: near miss, not in the list.",
        [S("19:50:20", pop="IAD89-C1", expect="Error", status="404")],
    ),
]

# --------------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------------
HTML = "text/html; charset=UTF-8"
PAGES: dict[str, tuple[int, int]] = {  # path -> (bytes, landing weight)
    "/": (51234, 30),
    "/about": (38712, 4),
    "/about/leadership": (41208, 2),
    "/news": (44390, 6),
    "/news/2022/11/agency-announces-updated-case-processing-guidance": (36904, 4),
    "/news/2022/11/office-hours-thanksgiving-week": (29877, 3),
    NEWS_PAGE: (33561, 0),  # published at 14:02; weight set by time
    "/services": (40022, 6),
    "/services/apply-for-asylum": (47219, 10),
    "/services/check-case-status": (35120, 12),
    "/services/forms": (43876, 8),
    "/services/fees": (31402, 3),
    "/contact": (28345, 5),
    "/careers": (33019, 2),
    "/foia": (30211, 2),
    "/foia/reading-room": (52877, 1),
    "/data/monthly-statistics": (39450, 2),
    "/privacy": (27654, 1),
    "/accessibility": (26109, 1),
    "/es": (50877, 3),
    "/es/servicios/solicitar-asilo": (46322, 3),
}
CSS_MAIN = "/sites/default/files/css/css_Q0m4VZ8f2T1bXkS9r7Jb3d0Ew5yHqLpNcUaGiRtM6o.css"
ASSETS = [  # loaded on a browser's first page view: (path, query, referer_is_css)
    (CSS_MAIN, "", False),
    ("/sites/default/files/css/css_w7JcR1xWb0M5uTgK2zPqE9aLvY3oHn6SdFeIkBmA4x.css", "", False),
    ("/sites/default/files/js/js_Ts0bE2kMvP9gR4qX1wN8yJ5hC3uL7fA6zDoWiKpQeH.js", "", False),
    ("/core/assets/vendor/jquery/jquery.min.js", "v=3.6.1", False),
    ("/themes/custom/agency/logo.svg", "", False),
    ("/themes/custom/agency/fonts/source-sans-pro-v21-latin-regular.woff2", "", True),
    ("/themes/custom/agency/fonts/merriweather-v30-latin-700.woff2", "", True),
    ("/favicon.ico", "", False),
]
STATIC: dict[str, tuple[int, str]] = {
    CSS_MAIN: (48211, "text/css"),
    "/sites/default/files/css/css_w7JcR1xWb0M5uTgK2zPqE9aLvY3oHn6SdFeIkBmA4x.css": (9133, "text/css"),
    "/sites/default/files/js/js_Ts0bE2kMvP9gR4qX1wN8yJ5hC3uL7fA6zDoWiKpQeH.js": (121409, "application/javascript"),
    "/core/assets/vendor/jquery/jquery.min.js": (89664, "application/javascript"),
    "/themes/custom/agency/logo.svg": (7412, "image/svg+xml"),
    "/themes/custom/agency/fonts/source-sans-pro-v21-latin-regular.woff2": (24544, "font/woff2"),
    "/themes/custom/agency/fonts/merriweather-v30-latin-700.woff2": (31108, "font/woff2"),
    "/favicon.ico": (5430, "image/vnd.microsoft.icon"),
    "/robots.txt": (1594, "text/plain"),
    "/sitemap.xml": (18322, "application/xml"),
    "/sites/default/files/styles/hero_1440/public/2022-11/hero-field-office.jpg": (184233, "image/jpeg"),
    "/sites/default/files/styles/card_480/public/2022-11/case-processing.jpg": (41277, "image/jpeg"),
    "/sites/default/files/styles/card_480/public/2022-11/thanksgiving-hours.jpg": (38904, "image/jpeg"),
    "/sites/default/files/styles/card_480/public/2022-11/oversight-report.jpg": (44612, "image/jpeg"),
    "/sites/default/files/styles/card_480/public/2022-10/language-access.jpg": (36550, "image/jpeg"),
    "/sites/default/files/documents/2022/detention-oversight-report.pdf": (2381204, "application/pdf"),
    "/sites/default/files/documents/2022/annual-report-fy2022.pdf": (4129876, "application/pdf"),
    "/sites/default/files/documents/2022/language-access-plan.pdf": (612334, "application/pdf"),
    "/sites/default/files/documents/2022/monthly-statistics-october-2022.xlsx": (48211, XLSX),
    "/sites/default/files/documents/2021/monthly-statistics-december-2021.xlsx": (45120, XLSX),
    "/sites/default/files/forms/i-589-instructions.pdf": (401233, "application/pdf"),
    "/sites/default/files/forms/g-28.pdf": (210554, "application/pdf"),
}
IMAGE_ITOK = {
    "/sites/default/files/styles/hero_1440/public/2022-11/hero-field-office.jpg": "itok=Zr5pQ2Lm",
    "/sites/default/files/styles/card_480/public/2022-11/case-processing.jpg": "itok=8fKd3WqA",
    "/sites/default/files/styles/card_480/public/2022-11/thanksgiving-hours.jpg": "itok=pL0aZx9c",
    "/sites/default/files/styles/card_480/public/2022-11/oversight-report.jpg": "itok=Hq7Rt2Vn",
    "/sites/default/files/styles/card_480/public/2022-10/language-access.jpg": "itok=c4MmY1oE",
}
_CARDS = [p for p in IMAGE_ITOK if "/card_480/" in p]
PAGE_IMAGES = {
    "/": ["/sites/default/files/styles/hero_1440/public/2022-11/hero-field-office.jpg", *_CARDS[:3]],
    "/news": _CARDS,
    "/news/2022/11/agency-announces-updated-case-processing-guidance": [_CARDS[0]],
    "/news/2022/11/office-hours-thanksgiving-week": [_CARDS[1]],
    NEWS_PAGE: [_CARDS[2]],
}
DOCS = [  # (path, linked from, weight)
    ("/sites/default/files/documents/2022/detention-oversight-report.pdf", NEWS_PAGE, 6),
    ("/sites/default/files/documents/2022/annual-report-fy2022.pdf", "/about", 3),
    ("/sites/default/files/documents/2022/language-access-plan.pdf", "/accessibility", 1),
    ("/sites/default/files/documents/2022/monthly-statistics-october-2022.xlsx", "/data/monthly-statistics", 2),
    ("/sites/default/files/documents/2021/monthly-statistics-december-2021.xlsx", "/data/monthly-statistics", 1),
    ("/sites/default/files/forms/i-589-instructions.pdf", "/services/forms", 6),
    ("/sites/default/files/forms/g-28.pdf", "/services/forms", 3),
]
SEARCH_TERMS = [
    "asylum+interview",
    "case+status",
    "i-589",
    "work+permit",
    "fee+waiver",
    "change+of+address",
    "appointment",
    "foia+request",
    "detention",
    "biometrics",
    "asilo",
    "detenci%C3%B3n",
    "interpreter",
    "%22credible+fear%22",
]
SCAN_PATHS = [
    "/wp-login.php",
    "/wp-admin/",
    "/xmlrpc.php",
    "/.env",
    "/.git/config",
    "/phpmyadmin/",
    "/admin.php",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/actuator/health",
    "/server-status",
    "/config.json",
    "/backup.zip",
    "/sites/default/files/backup.sql",
    "/.aws/credentials",
    "/api/v1/users",
    "/cgi-bin/luci/;stok=/locale",
    "/owa/auth/logon.aspx",
    "/wp-content/plugins/wp-file-manager/readme.txt",
    "/solr/admin/info/system",
    "/user/register",
    "/sites/default/settings.php",
    "/CHANGELOG.txt",
    "/.DS_Store",
]
STATIC_EXT = (
    ".css",
    ".js",
    ".jpg",
    ".png",
    ".svg",
    ".woff2",
    ".ico",
    ".pdf",
    ".xlsx",
    ".xls",
    ".zip",
    ".sql",
    ".txt",
    ".xml",
    ".json",
    ".php",
)


NGINX_VERSION = "nginx/1.22.1"


def nginx_error_page(code: int, reason: str) -> int:
    # nginx's built-in error page, server_tokens on (the default): the familiar "404 153"
    return len(
        f"<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{code} {reason}</h1></center>\r\n<hr><center>{NGINX_VERSION}</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


NGINX_400 = nginx_error_page(400, "Bad Request")
NGINX_403 = nginx_error_page(403, "Forbidden")
NGINX_404 = nginx_error_page(404, "Not Found")
NGINX_503 = nginx_error_page(503, "Service Temporarily Unavailable")
CF_301 = len(
    "<html>\r\n<head><title>301 Moved Permanently</title></head>\r\n<body>\r\n"
    "<center><h1>301 Moved Permanently</h1></center>\r\n<hr><center>CloudFront</center>\r\n"
    "</body>\r\n</html>\r\n"
)
CF_502 = 951
DRUPAL_404 = 18934


@dataclass
class Answer:
    status: int
    size: int
    ctype: str
    kind: str  # html, static, error, health


def origin_answer(raw_path: str, query: str, t: float) -> Answer:
    """What nginx (and Drupal behind it) answers for a path, decoding the URI once as nginx does."""
    path = unquote(raw_path)
    if path == "/healthz":
        return Answer(200, 2, "text/plain", "health")
    if path == LEAK:
        if WINDOW_START <= t < WINDOW_END:
            return Answer(200, LEAK_SIZE, XLSX, "static")
        return Answer(404, NGINX_404, "text/html", "error")
    if path in STATIC:
        size, ctype = STATIC[path]
        return Answer(200, size, ctype, "static")
    if path in PAGES and not (path == NEWS_PAGE and t < WINDOW_START):
        return Answer(200, PAGES[path][0], HTML, "html")
    if path == "/search":
        return Answer(200, 31000 + zlib.crc32(query.encode()) % 9000, HTML, "html")
    if any(seg.startswith(".") for seg in path.split("/")):
        return Answer(403, NGINX_403, "text/html", "error")  # location ~ /\. { deny all; }
    if path.startswith("/sites/default/files/") and path.endswith("/"):
        return Answer(403, NGINX_403, "text/html", "error")  # autoindex off
    if path.lower().endswith(STATIC_EXT):
        return Answer(404, NGINX_404, "text/html", "error")  # try_files $uri =404
    return Answer(404, DRUPAL_404, HTML, "error")  # Drupal's themed 404 page


def cache_key(raw_path: str, query: str) -> str:
    # /sites/default/files/* uses a cache policy without query strings (and forwards none);
    # every other behaviour keys on and forwards the whole query string.
    if raw_path.startswith("/sites/default/files/") or not query:
        return raw_path
    return f"{raw_path}?{query}"


def origin_target(raw_path: str, query: str) -> str:
    return cache_key(raw_path, query)


def ttl(raw_path: str, ans: Answer) -> float:
    if ans.kind == "html":
        return 300.0
    if raw_path in ("/robots.txt", "/sitemap.xml"):
        return 3600.0
    return 86400.0


# --------------------------------------------------------------------------------------------
# Clients of ordinary traffic
# --------------------------------------------------------------------------------------------
US_EAST = ["IAD89-C1", "IAD66-C2", "JFK50-P3", "EWR53-C2", "ATL56-C1", "BOS50-C1", "PHL51-P1"]
US_WEST = ["ORD58-P3", "DFW56-P1", "DEN52-C1", "SFO53-C1", "LAX50-C1", "SEA19-C3"]
NETWORKS = [  # (label, cidr, pops, utc offset, weight, mobile share)
    ("Comcast Cable", "73.0.0.0/8", US_EAST + US_WEST, -5, 40, 0.3),
    ("Comcast Cable IPv6", "2601::/20", US_EAST + US_WEST, -5, 18, 0.3),
    ("Verizon Fios", "100.36.0.0/14", US_EAST, -5, 16, 0.2),
    ("AT&T Internet", "99.0.0.0/11", US_EAST + US_WEST, -6, 14, 0.3),
    ("Charter Spectrum", "24.160.0.0/12", US_EAST + US_WEST, -6, 12, 0.3),
    ("T-Mobile USA", "172.56.0.0/14", US_EAST + US_WEST, -5, 16, 1.0),
    ("T-Mobile USA IPv6", "2607:fb90::/32", US_EAST + US_WEST, -5, 10, 1.0),
    ("Verizon Wireless", "174.192.0.0/11", US_EAST + US_WEST, -5, 10, 1.0),
    ("Rogers", "99.224.0.0/11", ["YTO50-C1"], -5, 3, 0.4),
    ("British Telecom", "86.128.0.0/10", ["LHR62-C2"], 0, 3, 0.4),
    ("Deutsche Telekom", "79.192.0.0/10", ["FRA56-P5"], 1, 3, 0.4),
    ("Deutsche Telekom IPv6", "2003::/19", ["FRA56-P5"], 1, 2, 0.4),
    ("Orange", "90.0.0.0/9", ["CDG50-C1"], 1, 2, 0.4),
    ("Telefonica", "83.32.0.0/11", ["MAD51-C3"], 1, 2, 0.5),
    ("Telmex", "187.188.0.0/14", ["QRO51-P1"], -6, 4, 0.6),
    ("Claro Guatemala", "181.114.0.0/16", ["QRO51-P1"], -6, 2, 0.8),
    ("Reliance Jio", "49.36.0.0/14", ["BOM78-P1"], 5.5, 2, 0.9),
    ("Ethio Telecom", "196.188.0.0/14", ["FRA56-P5"], 3, 1, 0.9),
]
DESKTOP_UAS = [
    (CHROME_WIN, 40),
    (EDGE_WIN, 15),
    (CHROME_MAC, 12),
    (SAFARI_MAC, 10),
    (FIREFOX_WIN, 8),
    (FIREFOX_LINUX, 2),
]
MOBILE_UAS = [(SAFARI_IPHONE, 40), (CHROME_ANDROID, 30), (SAMSUNG, 10), (FB_IPHONE, 8), (TWITTER_IPHONE, 5)]
LANDING_REFERERS = [
    ("https://www.google.com/", 45),
    ("", 22),
    ("https://www.bing.com/", 6),
    ("https://duckduckgo.com/", 3),
    ("https://www.usa.gov/", 3),
    ("android-app://com.google.android.googlequicksearchbox/", 3),
    ("https://l.facebook.com/", 3),
    ("https://t.co/", 2),
    ("https://www.reddit.com/", 2),
    ("https://search.yahoo.com/", 1),
]
BOTS = [  # (name, ua, cidr or fixed list, pops, requests per hour, http)
    (
        "Googlebot",
        GOOGLEBOT,
        ["66.249.66.83", "66.249.66.87", "66.249.64.145", "66.249.68.33", "66.249.79.202"],
        ["SFO53-C1", "IAD66-C2"],
        6,
        "HTTP/1.1",
    ),
    ("Googlebot smartphone", GOOGLEBOT_SMART, ["66.249.66.14", "66.249.70.51"], ["SFO53-C1"], 3, "HTTP/2.0"),
    (
        "bingbot",
        BINGBOT,
        ["40.77.167.41", "40.77.167.9", "157.55.39.206", "207.46.13.118"],
        ["SEA19-C3", "DFW56-P1"],
        4,
        "HTTP/1.1",
    ),
    ("AhrefsBot", AHREFS, ["54.36.148.117", "54.36.149.63"], ["CDG50-C1"], 2, "HTTP/1.1"),
    ("SemrushBot", SEMRUSH, ["185.191.171.12", "185.191.171.38"], ["IAD89-C1"], 1, "HTTP/1.1"),
    ("YandexBot", YANDEX, ["5.255.231.137", "213.180.203.44"], ["HEL51-P1"], 0.5, "HTTP/1.1"),
    ("Applebot", APPLEBOT, ["17.241.219.52", "17.241.75.16"], ["SFO53-C1"], 0.5, "HTTP/1.1"),
]
SCANNERS = [  # through the CDN: (addr, ua, pop, local time of burst)
    ("218.92.0.112", GO_HTTP, "HKG62-C1", "03:12:40"),
    (
        "45.148.10.81",
        "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/74.0.3729.169 Safari/537.36",
        "AMS1-C1",
        "09:41:07",
    ),
    ("143.198.164.23", PY_REQUESTS, "SFO53-C1", "12:20:15"),
    ("80.94.92.40", XSS_PROBE, "FRA56-P5", "21:06:52"),
    ("2a01:4f8:1c1c:5b1a::1", CURL_781, "FRA56-P5", "23:48:30"),
]
UPTIME_ADDRS = ["69.162.124.234", "216.144.250.150", "63.143.42.246"]

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def local_ts(hms: str, day: int = 28) -> float:
    h, m, s = (int(x) for x in hms.split(":"))
    return datetime(2022, 11, day, h, m, s, tzinfo=EST).timestamp()


def pick(rng: random.Random, weighted):
    items = [w for _, w in weighted]
    return rng.choices([v for v, _ in weighted], weights=items, k=1)[0]


def random_addr(rng: random.Random, cidr: str) -> str:
    net = ipaddress.ip_network(cidr)
    while True:
        if net.version == 4:
            a = net[rng.randrange(1, net.num_addresses - 1)]
            if 1 <= int(a) % 256 <= 254:
                return str(a)
        else:
            # a /64 from the prefix, then a random interface id
            prefix = int(net.network_address) | (rng.getrandbits(64 - net.prefixlen) << 64)
            return str(ipaddress.IPv6Address(prefix | rng.getrandbits(64)))


# --------------------------------------------------------------------------------------------
# Requests and their results
# --------------------------------------------------------------------------------------------
@dataclass
class Req:
    t: float
    client: str
    via: str  # cdn / direct / health
    ua: str
    method: str = "GET"
    path: str = "/"
    query: str = ""
    proto: str = "https"
    host: str = SITE_HOST
    referer: str = ""
    xff: str = ""
    http: str = "HTTP/2.0"
    pop: str = ""
    byte_range: tuple[int, int] | None = None
    conditional: bool = False
    abort_at: int | None = None
    origin_status: int | None = None
    edge_error: str = ""  # CloudFront-generated error (no origin contact), e.g. OriginConnectError
    late: bool = False
    actor: str = ""
    step: Step | None = None
    own_stream: bool = False  # random details from the actor's own stream (Actor.own_stream)
    raw_request: bytes | None = None  # direct junk request lines
    seq: int = 0
    # filled by the simulation
    status: str = ""
    body: int = 0
    content_len: int | None = None
    ctype: str = ""
    result: str = ""
    response_result: str = ""
    detailed: str = ""
    out_range: tuple[int, int] | None = None
    origin: OriginLine | None = None
    edge_line: str = ""
    edge_file: str = ""


@dataclass
class OriginLine:
    t: float
    remote: str
    request: bytes | str
    status: int
    body: int
    referer: str
    ua: str
    xff: str
    req: Req

    def render(self) -> str:
        when = datetime.fromtimestamp(int(self.t), EST).strftime("%d/%b/%Y:%H:%M:%S -0500")
        return (
            f'{self.remote} - - [{when}] "{nginx_esc(self.request)}" {self.status} {self.body} '
            f'"{nginx_esc(self.referer)}" "{nginx_esc(self.ua)}" "{nginx_esc(self.xff)}"'
        )


CF_SPECIAL = set("<>\"#%{}|\\^~[]`' ")


def cf_enc(value: str) -> str:
    """CloudFront's field encoding (AWS standard log docs): 0-32, 127+ and a fixed table."""
    if not value:
        return "-"
    out: list[str] = []
    for ch in value:
        if ord(ch) <= 32 or ord(ch) >= 127 or ch in CF_SPECIAL:
            out.extend(f"%{b:02X}" for b in ch.encode())
        else:
            out.append(ch)
    return "".join(out)


def nginx_esc(value: bytes | str | None) -> str:
    """ngx_http_log_escape for the default (non-JSON) log_format; empty becomes '-'."""
    if value is None or value == "":
        return "-"
    data = value.encode() if isinstance(value, str) else value
    out: list[str] = []
    for b in data:
        if b < 0x20 or b > 0x7E or b in (0x22, 0x5C):
            out.append(f"\\x{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


class Simulation:
    """Runs every viewer request through per-POP caches in time order, filling in the edge
    result and the origin line it causes."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.cache: dict[tuple[str, str], float] = {}
        self.streams: dict[str, random.Random] = {}
        self.invalidated = False
        self.origin_addrs = self._origin_addrs()

    def _origin_addrs(self) -> dict[str, list[str]]:
        pops = sorted(
            {p for n in NETWORKS for p in n[2]}
            | {p for b in BOTS for p in b[3]}
            | {s[2] for s in SCANNERS}
            | {s.pop for a in ACTORS for s in a.steps if s.pop}
            | {"DFW56-P1"}
        )
        out: dict[str, list[str]] = {}
        for pop in pops:
            nets = [ipaddress.ip_network(n) for n in CF_ORIGIN_NETS]
            out[pop] = []
            for _ in range(3):
                net = nets[self.rng.randrange(2)]
                out[pop].append(str(net[self.rng.randrange(256, net.num_addresses - 256)]))
        return out

    def rng_for(self, r: Req) -> random.Random:
        """The shared stream, or the actor's own (Actor.own_stream)."""
        if not r.own_stream:
            return self.rng
        return self.streams.setdefault(r.actor, random.Random(f"{SEED}-edge-{r.actor}"))

    def run(self, reqs: list[Req]) -> None:
        for r in reqs:
            if not self.invalidated and r.t >= INVALIDATION:
                self.invalidated = True
                for key in list(self.cache):
                    if key[1].startswith(LEAK_DIR):
                        del self.cache[key]
            if r.via == "cdn":
                self.edge(r)
            elif r.via == "direct":
                self.direct(r)
            else:
                r.origin = OriginLine(r.t, r.client, f"{r.method} {r.path} HTTP/1.1", 200, 2, "", r.ua, "", r)

    def direct(self, r: Req) -> None:
        if r.raw_request is not None:
            r.origin = OriginLine(r.t, r.client, r.raw_request, int(r.status), r.body, "", r.ua, "", r)
            return
        ans = origin_answer(r.path, r.query, r.t)
        body = 0 if r.method == "HEAD" else ans.size
        status = ans.status
        if r.abort_at is not None:
            status, body = 499, r.abort_at
        target = r.path + (f"?{r.query}" if r.query else "")
        r.status, r.body = str(status), body
        r.origin = OriginLine(r.t, r.client, f"{r.method} {target} HTTP/1.1", status, body, r.referer, r.ua, r.xff, r)

    def to_origin(self, r: Req, method: str, status: int, body: int) -> None:
        rng = self.rng_for(r)
        delay = rng.uniform(0.05, 0.95)
        xff = f"{r.xff}, {r.client}" if r.xff else r.client
        r.origin = OriginLine(
            r.t + delay,
            rng.choice(self.origin_addrs[r.pop]),
            f"{method} {origin_target(r.path, r.query)} HTTP/1.1",
            status,
            body,
            r.referer,
            r.ua,
            xff,
            r,
        )

    def edge(self, r: Req) -> None:
        if r.proto == "http":
            r.status, r.body, r.content_len, r.ctype = "301", CF_301, CF_301, "text/html"
            r.result = r.response_result = r.detailed = "Redirect"
            return
        if r.edge_error:
            r.status, r.body, r.content_len, r.ctype = "502", CF_502, CF_502, "text/html"
            r.result = r.response_result = "Error"
            r.detailed = r.edge_error
            return
        ans = origin_answer(r.path, r.query, r.t)
        if r.origin_status == 503:
            ans = Answer(503, NGINX_503, "text/html", "error")
        key = (r.pop, cache_key(r.path, r.query))
        cacheable = ans.kind in ("html", "static") and not r.path.startswith("/search")
        filled = self.cache.get(key) if cacheable else None
        if filled is not None and r.t - filled < ttl(r.path, ans):
            result = "Hit"
        elif filled is not None:
            result = "RefreshHit"
            self.to_origin(r, "GET", 304, 0)
            self.cache[key] = r.t
        elif ans.status >= 400:
            result = "Error"
            self.to_origin(r, r.method, ans.status, 0 if r.method == "HEAD" else ans.size)
        else:
            result = "Miss"
            if r.method == "HEAD":
                self.to_origin(r, "HEAD", ans.status, 0)
            else:  # range and conditional misses fetch the whole object
                self.to_origin(r, "GET", ans.status, ans.size)
                if cacheable:
                    self.cache[key] = r.t
        r.result = r.response_result = r.detailed = result
        r.ctype = ans.ctype
        if ans.status >= 400:
            r.status, r.body, r.content_len = str(ans.status), ans.size, ans.size
            if r.method == "HEAD":
                r.body = 0
            return
        if r.conditional:
            r.status, r.body, r.content_len, r.ctype = "304", 0, None, ""
        elif r.method == "HEAD":
            r.status, r.body = "200", 0
            r.content_len = ans.size if ans.kind == "static" else None
        elif r.byte_range is not None:
            start, end = r.byte_range[0], min(r.byte_range[1], ans.size - 1)
            r.status, r.body, r.content_len, r.out_range = "206", end - start + 1, end - start + 1, (start, end)
        else:
            r.status, r.body = "200", ans.size
            r.content_len = ans.size if ans.kind == "static" else None  # Drupal pages are chunked
        if r.abort_at is not None:
            # the viewer hung up: CloudFront logs 000, the final result type Error, and keeps
            # the Content-Length it had already sent in sc-content-len
            r.status, r.body = "000", min(r.abort_at, r.body)
            r.result, r.detailed = "Error", "ClientCommError"

    def render_edge(self, r: Req) -> str:
        rng = self.rng_for(r)
        dt = datetime.fromtimestamp(int(r.t), UTC)
        if r.status in ("304",):
            header = rng.randint(240, 330)
        elif r.result == "Redirect":
            header = rng.randint(260, 320)
        elif r.status.startswith(("4", "5")):
            header = rng.randint(330, 470)
        elif r.ctype == HTML:
            header = rng.randint(520, 760)
        else:
            header = rng.randint(330, 520)
        sc_bytes = header + r.body
        if r.status == "000" and r.body == 0:
            sc_bytes = rng.randint(0, 120)
        if r.http == "HTTP/1.1":
            cs_bytes = len(r.method) + len(r.path) + len(r.query) + len(r.ua) + rng.randint(90, 260)
        else:
            cs_bytes = rng.randint(24, 140) + (len(r.query) if r.query else 0)
        if r.result in ("Hit", "Redirect"):
            ttfb = rng.uniform(0.001, 0.006)
        elif r.ctype == HTML:
            ttfb = rng.uniform(0.12, 0.85)
        else:
            ttfb = rng.uniform(0.03, 0.32)
        speed = rng.uniform(0.4e6, 12e6) if r.actor != "tor_late" else 0.15e6
        taken = ttfb + r.body / speed
        if r.proto == "https":
            ssl = pick(
                rng,
                [
                    (("TLSv1.3", "TLS_AES_128_GCM_SHA256"), 70),
                    (("TLSv1.3", "TLS_AES_256_GCM_SHA384"), 10),
                    (("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), 8),
                    (("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), 12),
                ],
            )
        else:
            ssl = ("-", "-")
        # base64 of 40 bytes: 53 free characters, one holding the last 2 bits, then "=="
        req_id = "".join(rng.choice(B64URL) for _ in range(53)) + rng.choice("AQgw") + "=="
        fields = [
            dt.strftime("%Y-%m-%d"),
            dt.strftime("%H:%M:%S"),
            r.pop,
            str(sc_bytes),
            r.client,
            r.method,
            CF_HOST,
            cf_enc(r.path),
            r.status,
            cf_enc(r.referer),
            cf_enc(r.ua),
            cf_enc(r.query),
            "-",
            r.result,
            req_id,
            r.host,
            r.proto,
            str(cs_bytes),
            f"{taken:.3f}",
            cf_enc(r.xff),
            ssl[0],
            ssl[1],
            r.response_result,
            r.http if r.proto == "https" else "HTTP/1.1",
            "-",
            "-",
            str(rng.randint(1025, 65535)),
            f"{ttfb:.3f}",
            r.detailed,
            cf_enc(r.ctype),
            "-" if r.content_len is None else str(r.content_len),
            "-" if r.out_range is None else str(r.out_range[0]),
            "-" if r.out_range is None else str(r.out_range[1]),
        ]
        assert len(fields) == 33
        return "\t".join(fields)


# --------------------------------------------------------------------------------------------
# Ordinary traffic
# --------------------------------------------------------------------------------------------
DIURNAL = [2, 1.5, 1, 1, 1, 1.5, 3, 5, 8, 10, 11, 11, 10, 11, 11, 10, 9, 7, 6, 6, 6, 5, 4, 3]


@dataclass
class Client:
    addr: str
    ua: str
    http: str
    pop: str
    tz: float
    xff: str = ""
    loaded_assets: bool = False


class Traffic:
    def __init__(self, rng: random.Random, reserved: list[str]):
        self.rng = rng
        self.reqs: list[Req] = []
        self.used = set(reserved)  # membership only, never iterated

    def add(self, **kw) -> Req:
        r = Req(**kw)
        if LOG_START <= r.t < LOG_END:
            self.reqs.append(r)
        return r

    def new_addr(self, cidr: str) -> str:
        while True:
            a = random_addr(self.rng, cidr)
            if a not in self.used:
                self.used.add(a)
                return a

    def session_start(self, tz: float) -> float:
        weights = [DIURNAL[int((5 + h + tz) % 24)] for h in range(26)]  # LOG_START is 05:00 UTC
        hour = self.rng.choices(range(26), weights=weights, k=1)[0]
        return LOG_START + hour * 3600 + self.rng.uniform(0, 3600)

    def cdn(self, c: Client, t: float, path: str, **kw) -> Req:
        base = dict(t=t, client=c.addr, via="cdn", ua=c.ua, path=path, http=c.http, pop=c.pop, xff=c.xff)
        base.update(kw)
        return self.add(**base)

    def page_view(self, c: Client, t: float, page: str, referer: str, query: str = "") -> float:
        rng = self.rng
        self.cdn(c, t, page, query=query, referer=referer)
        url = f"https://{SITE_HOST}{page}" + (f"?{query}" if query else "")
        if not c.loaded_assets:
            c.loaded_assets = True
            for path, q, from_css in ASSETS:
                t += rng.uniform(0.02, 0.6)
                ref = f"https://{SITE_HOST}{CSS_MAIN}" if from_css else url
                self.cdn(c, t, path, query=q, referer=ref)
        elif rng.random() < 0.15:
            # a browser revalidating its cached stylesheet
            t += rng.uniform(0.02, 0.3)
            self.cdn(c, t, CSS_MAIN, referer=url, conditional=True)
        for img in PAGE_IMAGES.get(page, []):
            t += rng.uniform(0.05, 0.9)
            self.cdn(c, t, img, query=IMAGE_ITOK[img], referer=url)
        return t

    def browser_session(self, c: Client, t: float) -> None:
        rng = self.rng
        referer = pick(rng, LANDING_REFERERS)
        if referer == "https://t.co/":
            referer += "".join(rng.choice(B64URL[:62]) for _ in range(10))
        pages = [(p, w) for p, (_, w) in PAGES.items() if w]
        if t >= WINDOW_START:
            pages.append((NEWS_PAGE, 10))
        landing = pick(rng, pages)
        if referer == "" and rng.random() < 0.12:  # typed http://www.agency.gov/
            self.cdn(c, t, landing, proto="http", http="HTTP/1.1")
            t += rng.uniform(0.05, 0.3)
        t = self.page_view(c, t, landing, referer)
        prev = landing
        for _ in range(min(6, int(rng.expovariate(0.7)))):
            t += rng.uniform(8, 150)
            roll = rng.random()
            prev_url = f"https://{SITE_HOST}{prev}"
            if roll < 0.12:
                term = rng.choice(SEARCH_TERMS)
                if t > WINDOW_START + 3600 and rng.random() < 0.25:
                    term = "detention+roster"
                t = self.page_view(c, t, "/search", prev_url, query=f"keys={term}")
                prev = "/search"
                continue
            if roll < 0.30:
                docs = [(d, w) for d, page, w in DOCS if page != NEWS_PAGE or t >= WINDOW_START]
                doc = pick(rng, docs)
                size = STATIC[doc][0]
                if doc.endswith(".pdf") and rng.random() < 0.3:
                    # Chrome's PDF viewer reads in ranges
                    start = 0
                    for _ in range(rng.randint(2, 4)):
                        length = rng.choice([65536, 131072, 262144, 524288])
                        end = min(size - 1, start + length - 1)
                        self.cdn(c, t, doc, referer=prev_url, byte_range=(start, end))
                        t += rng.uniform(0.2, 3)
                        start = rng.randrange(0, size - 1)
                elif rng.random() < 0.07:
                    self.cdn(c, t, doc, referer=prev_url, abort_at=rng.randrange(1000, size // 2))
                else:
                    self.cdn(c, t, doc, referer=prev_url)
                continue
            page = pick(rng, pages)
            t = self.page_view(c, t, page, prev_url)
            prev = page

    def browsers(self, count: int) -> None:
        rng = self.rng
        nets = [(n, n[4]) for n in NETWORKS]
        for _ in range(count):
            net = pick(rng, nets)
            mobile = rng.random() < net[5]
            ua = pick(rng, MOBILE_UAS if mobile else DESKTOP_UAS)
            http = "HTTP/3.0" if rng.random() < 0.05 else "HTTP/2.0"
            c = Client(self.new_addr(net[1]), ua, http, rng.choice(net[2]), net[3])
            for _ in range(1 + int(rng.expovariate(1.6))):
                self.browser_session(c, self.session_start(c.tz))

    def proxied_browsers(self) -> None:
        # organisations whose proxies add X-Forwarded-For: c-ip is the proxy
        for proxy, inner, pop in [
            ("12.151.77.31", "10.44.7.201", "JFK50-P3"),
            ("204.14.239.5", "192.168.20.14", "IAD66-C2"),
            ("63.118.42.10", "172.16.4.31, 10.8.0.12", "ATL56-C1"),
        ]:
            self.used.add(proxy)
            for _ in range(3):
                c = Client(proxy, CHROME_WIN, "HTTP/1.1", pop, -5, xff=inner)
                self.browser_session(c, self.session_start(-5))

    def agency_staff(self) -> None:
        # agency HQ egress browsing its own site through the day (not the leaked file)
        for _ in range(8):
            c = Client("4.31.166.20", pick(self.rng, DESKTOP_UAS), "HTTP/2.0", "IAD89-C1", -5)
            self.browser_session(c, self.session_start(-5))

    def bots(self) -> None:
        rng = self.rng
        crawlable = [(p, 3) for p in PAGES if p != NEWS_PAGE] + [(d, 1) for d, _, _ in DOCS] + [("/sitemap.xml", 1)]
        for _name, ua, addrs, pops, per_hour, http in BOTS:
            t = LOG_START + rng.uniform(0, 600)
            while t < LOG_END:
                addr = rng.choice(addrs)
                pop = rng.choice(pops)
                c = Client(addr, ua, http, pop, 0)
                if rng.random() < 0.08:
                    path = "/robots.txt"
                else:
                    choices = crawlable + ([(NEWS_PAGE, 6)] if t >= WINDOW_START else [])
                    path = pick(rng, choices)
                self.cdn(c, t, path)
                t += rng.expovariate(per_hour / 3600)
        # link unfurlers after the news post was shared
        for addr, ua, pop, hms in [
            ("69.171.249.11", FACEBOOK, "IAD89-C1", "14:40:12"),
            ("199.16.157.181", TWITTERBOT, "SFO53-C1", "15:02:47"),
            ("199.16.157.183", TWITTERBOT, "SFO53-C1", "15:44:03"),
            ("173.252.83.117", FACEBOOK, "IAD89-C1", "17:12:55"),
        ]:
            self.cdn(Client(addr, ua, "HTTP/1.1", pop, 0), local_ts(hms), NEWS_PAGE)
        # uptime monitor: HEAD / every 5 minutes
        t = LOG_START + 17
        i = 0
        while t < LOG_END:
            c = Client(UPTIME_ADDRS[i % 3], UPTIMEROBOT, "HTTP/1.1", "DFW56-P1", 0)
            self.cdn(c, t + rng.uniform(-2, 2), "/", method="HEAD")
            t += 300
            i += 1

    def scanners(self) -> None:
        rng = self.rng
        for addr, ua, pop, hms in SCANNERS:
            self.used.add(addr)
            c = Client(addr, ua, "HTTP/1.1", pop, 0)
            t = local_ts(hms)
            paths = rng.sample(SCAN_PATHS, rng.randint(9, 16))
            if ua == XSS_PROBE:
                paths = ["/", "/search", *paths[:4]]
            for path in paths:
                q = "keys=%3Cscript%3Ealert(1)%3C%2Fscript%3E" if path == "/search" else ""
                self.cdn(c, t, path, query=q)
                t += rng.uniform(0.2, 4)
        # a short origin outage during the 06:15 maintenance: CloudFront cannot connect
        t = local_ts("06:15:31")
        for _ in range(3):
            net = NETWORKS[0]
            c = Client(self.new_addr(net[1]), CHROME_WIN, "HTTP/2.0", "IAD89-C1", -5)
            self.cdn(c, t, rng.choice(["/", "/services/check-case-status"]), edge_error="OriginConnectError")
            t += rng.uniform(5, 40)

    def direct_noise(self) -> None:
        """Requests to the origin's public address that bypass CloudFront."""
        rng = self.rng
        plan = [
            ("167.94.138.44", CENSYS, "02:14:09", "GET", "/"),
            ("167.94.138.44", CENSYS, "02:14:10", "GET", "/favicon.ico"),
            ("205.210.31.153", EXPANSE, "04:51:33", "GET", "/"),
            ("162.142.125.221", CENSYS, "08:03:55", "GET", "/"),
            ("193.35.18.120", ZGRAB, "10:27:41", "GET", "/"),
            ("193.35.18.120", ZGRAB, "10:27:43", "GET", "/.env"),
            ("193.35.18.120", ZGRAB, "10:27:44", "POST", "/boaform/admin/formLogin"),
            ("80.94.92.40", XSS_PROBE, "21:09:12", "GET", "/"),
            ("80.94.92.40", XSS_PROBE, "21:09:14", "GET", "/wp-login.php"),
            ("104.248.140.18", CURL_781, "22:40:05", "HEAD", "/"),
            ("104.248.140.18", CURL_781, "22:40:07", "GET", "/robots.txt"),
            ("198.235.24.18", EXPANSE, "01:22:17+1", "GET", "/"),
        ]
        for addr, ua, hms, method, path in plan:
            day = 29 if hms.endswith("+1") else 28
            self.used.add(addr)
            self.add(
                t=local_ts(hms.removesuffix("+1"), day),
                client=addr,
                via="direct",
                ua=ua,
                method=method,
                path=path,
                http="HTTP/1.1",
            )
        # nginx traps: a TLS ClientHello on the plain port, an empty and a missing request line
        hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])
        hello += bytes(rng.getrandbits(8) for _ in range(32)) + b"\x20" + bytes(rng.getrandbits(8) for _ in range(20))
        for addr, hms, raw, status, body in [
            ("45.79.181.104", "05:33:18", hello, "400", NGINX_400),
            ("184.105.247.196", "11:48:02", b"", "400", 0),
            ("71.6.199.23", "15:17:29", None, "400", 0),
        ]:
            self.used.add(addr)
            r = self.add(
                t=local_ts(hms), client=addr, via="direct", ua="", path="", raw_request=raw if raw is not None else b"-"
            )
            r.status, r.body = status, body

    def health(self) -> None:
        for i, addr in enumerate(HEALTH_CHECKERS):
            t = LOG_START + 11 + 30 * i
            while t < LOG_END:
                self.add(t=t, client=addr, via="health", ua=ELB, path="/healthz", http="HTTP/1.1")
                t += self.rng.uniform(59.6, 60.4)


def actor_requests(rng: random.Random, traffic: Traffic) -> list[Req]:
    out = []
    for a in ACTORS:
        if a.prelude:
            page, hms, ref = a.prelude
            pop = next(s.pop for s in a.steps if s.pop)
            c = Client(a.addr, a.ua, a.http, pop, -5)
            traffic.page_view(c, local_ts(hms), page, ref)
        for s in a.steps:
            out.append(
                Req(
                    t=local_ts(s.local),
                    client=a.addr,
                    via=s.via,
                    ua=a.ua,
                    method=s.method,
                    path=s.path,
                    query=s.query,
                    proto=s.proto,
                    host=s.host,
                    referer=s.referer,
                    xff=a.xff,
                    http=a.http if s.proto == "https" else "HTTP/1.1",
                    pop=s.pop,
                    byte_range=s.byte_range,
                    conditional=s.conditional,
                    abort_at=s.abort_at,
                    origin_status=s.origin_status,
                    late=s.late,
                    actor=a.key,
                    step=s,
                    own_stream=a.own_stream,
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
CF_FIELDS = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end"
)


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def write_all(reqs: list[Req], sim: Simulation, rng: random.Random) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    # CloudFront: one file per UTC hour; a few records of each hour arrive in the next one
    hours = [LOG_START + 3600 * i for i in range(int((LOG_END - LOG_START) // 3600))]
    buckets: dict[float, list[tuple[float, str, Req]]] = {h: [] for h in hours}
    edge = [r for r in reqs if r.via == "cdn"]
    for r in edge:
        r.edge_line = sim.render_edge(r)
    late_ids = set()
    for h in hours[:-1]:
        tail = [r for r in edge if h + 3300 <= r.t < h + 3600 and not r.actor]
        for r in rng.sample(tail, min(len(tail), rng.randint(1, 3))):
            late_ids.add(r.seq)
    for r in edge:
        hour = LOG_START + (int(r.t - LOG_START) // 3600) * 3600
        if r.late or r.seq in late_ids:
            hour += 3600
            key = hour + rng.uniform(0, 3600)  # delivered with the next batch, anywhere in it
        else:  # records are not in time order within a file
            order = random.Random(f"{SEED}-files-{r.actor}-{r.t}") if r.own_stream else rng
            key = r.t + order.uniform(0, 40)
        buckets[hour].append((key, r.edge_line, r))
    for h in hours:
        stamp = datetime.fromtimestamp(h, UTC).strftime("%Y-%m-%d-%H")
        name = f"cdn/{DIST_ID}.{stamp}.{rng.getrandbits(32):08X}.gz"
        rows = sorted(buckets[h], key=lambda x: (x[0], x[2].seq))
        for _, _, r in rows:
            r.edge_file = name
        text = "#Version: 1.0\n#Fields: " + CF_FIELDS + "\n" + "".join(line + "\n" for _, line, _ in rows)
        files[name] = gz(text.encode())
    # origin: time order, rotated at local midnight
    lines = sorted((r.origin for r in reqs if r.origin is not None), key=lambda o: (o.t, o.req.seq))
    day1 = "".join(o.render() + "\n" for o in lines if o.t < ROTATION)
    day2 = "".join(o.render() + "\n" for o in lines if o.t >= ROTATION)
    files["origin/access.log-20221129.gz"] = gz(day1.encode())
    files["origin/access.log"] = day2.encode()
    return files


CASE_TOML = """[case]
name = "Detention roster exposure (demo)"
timezone = "America/New_York"

[[sources]]
path = "cdn/*.gz"
format = "cloudfront"
role = "cdn"

[[sources]]
path = "origin/access.log*"
format = "nginx_main"
role = "origin"

[exposure]
start = "2022-11-28T14:02:00-05:00"
end   = "2022-11-28T19:05:00-05:00"
margin = "30m"

[[resources]]
path = "/sites/default/files/documents/2022/detention-roster.xlsx"
hosts = ["www.agency.gov", "d3abc.cloudfront.net"]
size = 1572864

[proxies]
trusted = ["130.176.0.0/16", "64.252.64.0/18"]

[agency]
networks = ["4.31.166.0/24"]    # the agency's own egress: its downloads are not outsiders'

[enrich]
lists = "lists"                 # published crawler, cloud and Tor lists (sample_logs/lists/)
demo_seed = "enrich_seed.csv"   # made-up IP databases for the demo: not real geography
"""


# --------------------------------------------------------------------------------------------
# Re-reading the written logs: derive every client's outcome from the text alone
# --------------------------------------------------------------------------------------------
NGINX_RE = re.compile(r'^(\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" "([^"]*)"$')


def parse_written(files: dict[str, bytes]) -> tuple[list[dict], list[dict]]:
    edge, origin = [], []
    for name in sorted(files):
        data = files[name]
        text = gzip.decompress(data).decode() if name.endswith(".gz") else data.decode()
        if name.startswith("cdn/"):
            lines = text.split("\n")
            assert lines[0] == "#Version: 1.0" and lines[1] == "#Fields: " + CF_FIELDS, name
            names = CF_FIELDS.split()
            for line in lines[2:]:
                if not line:
                    continue
                values = line.split("\t")
                assert len(values) == 33, line
                rec: dict[str, Any] = dict(zip(names, values, strict=True))
                rec["_file"] = name
                rec["_t"] = (
                    datetime.strptime(f"{rec['date']} {rec['time']}", "%Y-%m-%d %H:%M:%S")
                    .replace(tzinfo=UTC)
                    .timestamp()
                )
                edge.append(rec)
        else:
            prev = 0.0
            for line in text.splitlines():
                m = NGINX_RE.match(line)
                assert m, line
                t = datetime.strptime(m.group(3), "%d/%b/%Y:%H:%M:%S %z").timestamp()
                assert t >= prev, f"origin lines out of order: {line}"
                prev = t
                origin.append(
                    dict(
                        remote=m.group(1),
                        t=t,
                        request=m.group(4),
                        status=int(m.group(5)),
                        body=int(m.group(6)),
                        referer=m.group(7),
                        ua=m.group(8),
                        xff=m.group(9),
                        file=name,
                    )
                )
    return edge, origin


def in_cf(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return any(ip in ipaddress.ip_network(n) for n in CF_ORIGIN_NETS)


def derive_outcomes(edge: list[dict], origin: list[dict]) -> tuple[dict[str, str], list[str]]:
    """Outcome per client address for the leaked file, from the log text, the way an
    investigator would: edge records for CDN viewers, direct origin lines for the rest."""
    lo, hi = WINDOW_START - MARGIN, WINDOW_END + MARGIN
    events: dict[str, list[tuple[float, str, int, int | None, int | None, int]]] = {}
    near = []

    def add(addr, t, method, status, start, end, body):
        if not lo <= t <= hi:
            near.append(addr)
            return
        events.setdefault(addr, []).append((t, method, status, start, end, body))

    for e in edge:
        raw = unquote(e["cs-uri-stem"])  # undo CloudFront's field encoding once
        if unquote(raw) != LEAK or e["x-host-header"] not in (SITE_HOST, CF_HOST):
            continue
        if e["cs-protocol"] == "http" and e["sc-status"] == "301":
            continue
        status = int(e["sc-status"])
        start = int(e["sc-range-start"]) if e["sc-range-start"] != "-" else None
        end = int(e["sc-range-end"]) if e["sc-range-end"] != "-" else None
        add(e["c-ip"], e["_t"], e["cs-method"], status, start, end, int(e["sc-bytes"]))
    for o in origin:
        parts = o["request"].split(" ")
        if len(parts) != 3 or in_cf(o["remote"]):
            continue  # CloudFront's own fetches say nothing about what the viewer received
        path = unquote(parts[1].split("?")[0])
        if path == LEAK:
            add(o["remote"], o["t"], parts[0], o["status"], None, None, o["body"])
    outcomes: dict[str, str] = {}
    for addr, evs in events.items():
        covered: list[tuple[int, int]] = []  # 206 ranges (start, end), inclusive
        complete_copy = partial = failed = False
        for _t, method, status, start, end, body in sorted(evs):
            if method == "HEAD":
                continue
            if status == 200 and body >= LEAK_SIZE:
                complete_copy = True
            elif status == 206 and start is not None and end is not None:
                covered.append((start, end))
            elif status in (0, 200, 499) and body > 1000:
                partial = True
            elif status == 304:
                pass
            else:
                failed = True
        contiguous_to = -1  # last byte of the contiguous coverage from byte 0
        for first, last in sorted(covered):
            if first <= contiguous_to + 1:
                contiguous_to = max(contiguous_to, last)
        if covered and contiguous_to >= LEAK_SIZE - 1:
            complete_copy = True
        elif covered:
            partial = True
        if complete_copy:
            outcomes[addr] = COMPLETE
        elif partial:
            outcomes[addr] = PARTIAL
        elif failed:
            outcomes[addr] = FAILED
        else:
            outcomes[addr] = HEADERS_ONLY
    return outcomes, sorted(set(near) - set(outcomes))


def check(reqs: list[Req], files: dict[str, bytes]) -> None:
    for r in reqs:
        if r.step is None:
            assert unquote(unquote(r.path)) != LEAK or r.via == "health", f"ordinary traffic hit the leak: {r}"
            continue
        s = r.step
        got = (r.result, r.status) if r.via == "cdn" else (s.expect, r.status)
        assert got == (s.expect, s.status), f"{r.actor} {s.local}: expected {s.expect}/{s.status}, got {got}"
    edge, origin = parse_written(files)
    outcomes, near = derive_outcomes(edge, origin)
    expected = {a.addr: a.outcome for a in ACTORS if a.outcome != NEAR_MISS}
    assert outcomes == expected, "derived != intended: " + repr(sorted(set(outcomes.items()) ^ set(expected.items())))
    assert sorted(a.addr for a in ACTORS if a.outcome == NEAR_MISS) == near, near
    assert "203.0.113.77" not in outcomes
    # the follow-up's rules join exactly the addresses declared to be one person
    declared: dict[str, set[str]] = {}
    for a in ACTORS:
        if a.person:
            declared.setdefault(a.person, set()).add(a.addr)
    groups = derive_groups(derive_links(reqs))
    assert sorted(map(sorted, groups)) == sorted(map(sorted, declared.values())), groups
    # what SCENARIO.md says about X-Forwarded-For: the edge column shows what the viewer sent,
    # the origin line appends the viewer
    for a in ACTORS:
        if a.xff:
            mine = [e for e in edge if e["c-ip"] == a.addr and unquote(unquote(e["cs-uri-stem"])) == LEAK]
            assert mine and all(e["x-forwarded-for"] == cf_enc(a.xff) for e in mine), a.key
            fetched = [o for o in origin if in_cf(o["remote"]) and o["xff"] == f"{a.xff}, {a.addr}"]
            assert len(fetched) == sum(e["x-edge-result-type"] == "Miss" for e in mine), a.key
    # every edge Miss/RefreshHit has one origin line from a CloudFront address, with the viewer
    # as the rightmost X-Forwarded-For entry, 0-1 s after the edge record; Hits have none
    pending: dict[tuple[str, str], list[dict]] = {}
    for o in origin:
        if in_cf(o["remote"]):
            parts = o["request"].split(" ")
            pending.setdefault((parts[1], o["xff"].split(", ")[-1]), []).append(o)
    to_origin = [r for r in reqs if r.via == "cdn" and r.origin is not None]
    assert all(r.result in ("Miss", "RefreshHit", "Error") for r in to_origin)
    assert all(r.origin is not None for r in reqs if r.via == "cdn" and r.result in ("Miss", "RefreshHit"))
    assert all(r.origin is None for r in reqs if r.via == "cdn" and r.result == "Hit")
    matched = 0
    for e in sorted(edge, key=lambda x: x["_t"]):
        if e["x-edge-result-type"] not in ("Miss", "RefreshHit") and not (
            e["x-edge-result-type"] == "Error" and e["x-edge-detailed-result-type"] in ("Error", "ClientCommError")
        ):
            continue
        path = unquote(e["cs-uri-stem"])
        query = unquote(e["cs-uri-query"]) if e["cs-uri-query"] != "-" else ""
        target = cache_key(path, query)
        cands = pending.get((target, e["c-ip"]), [])
        hit = next((o for o in cands if 0 <= o["t"] - e["_t"] <= 1), None)
        if e["x-edge-result-type"] in ("Miss", "RefreshHit"):
            assert hit is not None, f"no origin line for {e}"
        if hit is not None:
            cands.remove(hit)
            matched += 1
    assert matched == len(to_origin), (matched, len(to_origin))
    assert not any(v for v in pending.values()), "origin lines from CloudFront with no edge record"


# --------------------------------------------------------------------------------------------
# Beyond the list: the follow-up's expected answers, derived here from the actors with the same
# documented rules (forensics/followup.py), and checked against the persons declared above.
# --------------------------------------------------------------------------------------------
IPV6_PREFIX = 64  # [same_downloader] defaults
AGENT_NETWORK_WITHIN = 600
RANGES_WITHIN = 3600
AGENCY_SITES = (SITE_HOST, CF_HOST)


def seed_networks() -> list[tuple[Any, int, str]]:
    """(network, ASN, organisation) from the demo's IP database seed."""
    rows = [line for line in (HERE / "enrich_seed.csv").read_text().splitlines() if line and not line.startswith("#")]
    out = []
    for row in csv.DictReader(rows):
        out.append((ipaddress.ip_network(row["network"]), int(row["asn"]), row["as_org"]))
    return out


def network_of(addr: str, nets: list[tuple[Any, int, str]]) -> tuple[int, str] | None:
    ip = ipaddress.ip_address(addr)
    found = [(n, asn, org) for n, asn, org in nets if n.version == ip.version and ip in n]
    if not found:
        return None
    _net, asn, org = max(found, key=lambda x: x[0].prefixlen)
    return asn, org


def resource_requests(reqs: list[Req], actor: str) -> list[Req]:
    """The actor's requests for the resource over the window and margin, as the tool counts them."""
    lo, hi = WINDOW_START - MARGIN, WINDOW_END + MARGIN
    return [r for r in reqs if r.actor == actor and unquote(r.path) == LEAK and lo <= r.t <= hi and r.proto == "https"]


def delivered(r: Req) -> bool:
    return r.method != "HEAD" and r.status in ("200", "206", "000", "499") and r.body > 0


def derive_links(reqs: list[Req]) -> list[tuple[str, str, str]]:
    """(address, address, rule) for every pair of downloaders the three rules join."""
    nets = seed_networks()
    people = [a for a in ACTORS if a.outcome != NEAR_MISS]
    own = {a.key: resource_requests(reqs, a.key) for a in people}

    def placed(a: Actor) -> list[tuple[int, int]]:
        out = []
        for r in own[a.key]:
            if r.status == "206" and r.out_range:
                out.append(r.out_range)
            elif r.status == "200" and r.method != "HEAD":
                out.append((0, LEAK_SIZE - 1))
        return out

    links = []
    for a, b in itertools.combinations(people, 2):
        x, y = sorted((a.addr, b.addr))
        ia, ib = ipaddress.ip_address(a.addr), ipaddress.ip_address(b.addr)
        if ia.version == ib.version == 6:
            pa = ipaddress.ip_network(f"{ia}/{IPV6_PREFIX}", strict=False)
            if ib in pa:
                links.append((x, y, "same_ipv6_prefix"))
        na, nb = network_of(a.addr, nets), network_of(b.addr, nets)
        close = min(abs(ra.t - rb.t) for ra in own[a.key] for rb in own[b.key])
        if not (a.bot or b.bot) and a.ua == b.ua and na and nb and na[0] == nb[0] and close <= AGENT_NETWORK_WITHIN:
            links.append((x, y, "same_agent_and_network"))
        overlap = any(p[0] <= q[1] and q[0] <= p[1] for p in placed(a) for q in placed(b))
        continues = any(
            ra.out_range and rb.out_range and abs(ra.t - rb.t) <= RANGES_WITHIN
            and (rb.out_range[0] == ra.out_range[1] + 1 or ra.out_range[0] == rb.out_range[1] + 1)
            for ra in own[a.key] for rb in own[b.key] if ra.status == rb.status == "206"
        )
        if a.ua == b.ua and continues and not overlap:
            links.append((x, y, "complementary_ranges"))
    return links


def derive_groups(links: list[tuple[str, str, str]]) -> list[set[str]]:
    groups: list[set[str]] = []
    for x, y, _ in links:
        joined = [g for g in groups if x in g or y in g]
        merged = {x, y}.union(*joined)
        groups = [g for g in groups if g not in joined] + [merged]
    return groups


def referer_site(referer: str) -> str:
    if not referer:
        return "(none)"
    host = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#:]+)", referer)
    return re.sub(r"^www\.", "", host.group(1).lower()) if host else referer


def spread(reqs: list[Req]) -> dict[str, Any]:
    """Referers in order of first appearance, the first outsider's download, deliveries per UTC
    hour and referring site, and the bots that fetched the file."""
    by_actor = {a.key: a for a in ACTORS}
    counted = sorted((r for a in ACTORS if a.outcome != NEAR_MISS for r in resource_requests(reqs, a.key)),
                     key=lambda r: (r.t, r.seq))
    referers: dict[str, tuple[float, str]] = {}
    for r in counted:
        referers.setdefault(r.referer or "(none)", (r.t, r.client))
    outsiders = [r for r in counted if not by_actor[r.actor].agency and not by_actor[r.actor].bot]
    first_download = next(r for r in outsiders if delivered(r))
    hourly: dict[tuple[str, str], int] = {}
    for r in counted:
        if delivered(r):
            hour = datetime.fromtimestamp(int(r.t) // 3600 * 3600, UTC).strftime("%Y-%m-%d %H:00Z")
            key = (hour, referer_site(r.referer))
            hourly[key] = hourly.get(key, 0) + 1
    return {
        "referers": sorted(referers.items(), key=lambda kv: kv[1][0]),
        "first_external_download": first_download,
        "hourly": sorted(hourly.items()),
        "bots": [a for a in ACTORS if a.bot and a.outcome != NEAR_MISS],
    }


# --------------------------------------------------------------------------------------------
# SCENARIO.md and expected_downloaders.csv
# --------------------------------------------------------------------------------------------
def hms(t: float) -> str:
    return datetime.fromtimestamp(int(t), EST).strftime("%H:%M:%S")


def utc_hms(t: float) -> str:
    d = datetime.fromtimestamp(int(t), UTC)
    return d.strftime("%H:%M:%SZ") + ("" if d.day == 28 else " on the 29th")


def describe(r: Req) -> str:
    path = "the file" if r.path == LEAK else f"`{r.path}`"
    q = f" ?{r.query}" if r.query else ""
    rng_ = f" Range {r.byte_range[0]}-{r.byte_range[1]}" if r.byte_range else ""
    cond = " If-Modified-Since" if r.conditional else ""
    when = f"{hms(r.t)} ({utc_hms(r.t)})"
    if r.via == "direct":
        return f"{when} direct to origin: {r.method} {path} → nginx {r.status}, {r.body} bytes, XFF `-`"
    ed = r.edge_line.split("\t")
    text = (
        f"{when} {r.method} {path}{q}{rng_}{cond} at {r.pop} ({r.proto}) → edge {r.status} "
        f"{r.result}, sc-bytes {ed[3]}, sc-content-len {ed[30]}"
    )
    if r.out_range:
        text += f", range {r.out_range[0]}-{r.out_range[1]}"
    if r.late:
        text += f", delivered late in `{r.edge_file.split('/')[-1]}`"
    if r.origin is not None:
        o = r.origin
        method = o.request.split(" ")[0] if isinstance(o.request, str) else "?"
        text += f"; origin {hms(o.t)} {method} {o.status} {o.body} from {o.remote}, XFF `{o.xff}`"
    else:
        text += "; not at origin"
    return text


def scenario(reqs: list[Req], files: dict[str, bytes]) -> str:
    by_actor: dict[str, list[Req]] = {}
    for r in reqs:
        if r.step is not None:
            by_actor.setdefault(r.actor, []).append(r)
    edge_n = sum(1 for r in reqs if r.via == "cdn")
    origin_n = sum(1 for r in reqs if r.origin is not None)
    clients = len({r.client for r in reqs if r.via == "cdn"})
    out: list[str] = []
    w = out.append
    w("# Demo incident: detention roster exposure\n")
    w(
        f"Generated by `generate.py` (seed {SEED}); do not edit by hand, re-run the script. "
        "Every table below is written from the same data the logs are generated from, and the "
        "script re-reads the written logs and checks that the outcomes derived from them match.\n"
    )
    w("## The case\n")
    w(
        f"- Site `{SITE_HOST}` behind CloudFront distribution `{DIST_ID}` (`{CF_HOST}`); origin nginx "
        "behind a network load balancer that preserves client addresses."
    )
    w(f"- Leaked file `{LEAK}`, {LEAK_SIZE} bytes, `{XLSX}`.")
    w(
        "- Reachable 2022-11-28 14:02:00-05:00 to 19:05:00-05:00 (19:02Z to 00:05Z on the 29th: the "
        "window crosses midnight UTC). Margin 30 min, so the list covers 13:32:00 to 19:35:00 local."
    )
    w(
        "- Before 14:02 and from 19:05 the origin answers 404 (nginx's built-in page, "
        f"{NGINX_404} bytes) and the edge logs `Error` 404. At 19:05 the folder "
        "`/sites/default/files/documents/2022/*` was invalidated, so no edge serves a cached copy "
        "after removal."
    )
    w(f"- The file was linked by mistake from the news post `{NEWS_PAGE}` (published 14:02).\n")
    w("## Files\n")
    w("| file | lines | bytes |")
    w("|---|---|---|")
    for name in sorted(files):
        data = files[name]
        text = gzip.decompress(data) if name.endswith(".gz") else data
        nlines = text.count(b"\n")
        w(f"| `{name}` | {nlines} | {len(data)} |")
    w("")
    w(
        f"{edge_n} CloudFront records from {clients} client addresses; {origin_n} origin lines "
        "(CloudFront fetches, direct requests, health checks, junk).\n"
    )
    w("## Downloaders: expected tool output\n")
    w(
        "One row per client address that requested the leaked file between 13:32:00 and 19:35:00 "
        "local. Outcomes: `complete` (every byte reached the client), `partial` (some body bytes, not "
        "all), `failed` (GET without body bytes of the file), `headers_only` (HEAD, or 304 without an "
        "earlier copy). Times are local (EST) with UTC in parentheses; edge times are CloudFront's "
        "whole-second `time`.\n"
    )
    w("| # | client address | network | outcome | what it did | requests (edge → origin) |")
    w("|---|---|---|---|---|---|")
    n = 0
    for a in ACTORS:
        if a.outcome == NEAR_MISS:
            continue
        n += 1
        steps = "<br>".join(describe(r) for r in by_actor[a.key])
        xff = f" Sent X-Forwarded-For `{a.xff}`." if a.xff else ""
        w(f"| {n} | `{a.addr}` | {a.network} | **{a.outcome}** | {a.story}{xff} UA `{a.ua}` | {steps} |")
    counts: dict[str, int] = {}
    for a in ACTORS:
        counts[a.outcome] = counts.get(a.outcome, 0) + 1
    w("")
    w(
        "Totals: "
        + ", ".join(f"{counts.get(k, 0)} {k}" for k in (COMPLETE, PARTIAL, FAILED, HEADERS_ONLY))
        + f" ({n} addresses). `203.0.113.77` (forged X-Forwarded-For) and `10.44.3.19` (private address "
        "behind a corporate proxy) must not be listed; nor must any CloudFront address "
        "(130.176.0.0/16, 64.252.64.0/18).\n"
    )
    w("## Near misses (must not be in the list)\n")
    for a in ACTORS:
        if a.outcome == NEAR_MISS:
            steps = "; ".join(describe(r) for r in by_actor[a.key])
            w(f"- `{a.addr}` ({a.network}): {a.story} {steps}")
    w(
        "- Requests that are not the resource, all within the window: the folder "
        f"`{LEAK_DIR}` (301 on http, then 403), `detention-roster.xls`, `detention_roster.xlsx`, "
        "`Detention-Roster.xlsx` (404) from `65.108.75.12`, and the double-encoded "
        "`detention%252Droster.xlsx` (cs-uri-stem `detention%25252Droster.xlsx`, 404) from `46.211.77.5`. "
        "nginx decodes a request path once, so the double-encoded one names a file called "
        "`detention%2Droster.xlsx`, which does not exist; a tool that decodes repeatedly would wrongly "
        "treat it as the resource (both clients are `complete` through other requests anyway)."
    )
    sibling = sum(
        1 for r in reqs if r.via == "cdn" and r.path.startswith(LEAK_DIR) and r.path != LEAK and r.step is None
    )
    roster_search = sum(1 for r in reqs if r.path == "/search" and "roster" in r.query)
    w(
        f"- {sibling} ordinary requests for other files in the same folder (e.g. "
        "`detention-oversight-report.pdf`, `monthly-statistics-october-2022.xlsx`), some as 206 ranges, "
        "some viewer aborts (000)."
    )
    w(f"- {roster_search} site searches for `keys=detention+roster` in the evening.\n")
    follow_up_section(reqs, w)
    w("## Traps and conventions a tester should know\n")
    cf_ranges = ", ".join(CF_ORIGIN_NETS)
    late_n = sum(
        1
        for r in reqs
        if r.via == "cdn"
        and r.edge_file
        and r.edge_file.split(".")[1] != datetime.fromtimestamp(int(r.t), UTC).strftime("%Y-%m-%d-%H")
    )
    for item in [
        "CloudFront files: one per UTC hour from `2022-11-28-05` to `2022-11-29-06`; `cs(Host)` is always "
        f"`{CF_HOST}`, `x-host-header` is `{SITE_HOST}` except for the fake Googlebot, which used `{CF_HOST}`. "
        "Records inside a file are not time-sorted (up to ~40 s out of order).",
        f"{late_n} records sit in the next hour's file (late delivery), including the Tor download at "
        "23:57:41Z in the `2022-11-29-00` file. Take time from the record, never from the file name.",
        "CloudFront percent-encodes `%` itself, so any encoded request path appears double-encoded in "
        "`cs-uri-stem` (`%2D` is logged `%252D`). Decode the field once to get the request as sent, then "
        "decode the path once as the server does. The same applies to user agents (`%20`, `%22`, `%5B`, "
        "`%7E` in SemrushBot's `7~bl`), referers and queries (`detenci%25C3%25B3n`).",
        "`sc-bytes` includes ~240-760 header bytes; `sc-content-len` is the Content-Length header, not "
        "what was delivered: it is 1572864 on the HEAD and on the `000` abort. Drupal HTML pages have "
        "`sc-content-len` `-` (chunked). 304s have `-`.",
        "Cache model: per edge location, TTL 24 h for static files, 300 s for HTML, 1 h for robots.txt and "
        "sitemap.xml; `/search` is never cached; errors are not cached. Query strings are ignored (not in "
        "the cache key, not forwarded) under `/sites/default/files/*` and forwarded elsewhere. Range, "
        "conditional and `000` requests that miss make CloudFront fetch the whole object: the origin "
        "logs a full `200 1572864` to CloudFront even when the viewer got a range or hung up.",
        "Which requests appear at the origin: every edge `Miss` and `RefreshHit` (RefreshHit → origin "
        "`304 0`), and edge `Error` records whose error came from the origin (404/403/503, and the "
        "`000`, whose detailed type is `ClientCommError` and response type `Miss`). Not at origin: `Hit`, "
        "`Redirect` (http→https 301) and the three `502 OriginConnectError` at 06:15 local.",
        "Edge/origin pairing: the origin line is 0-1 s after the edge record (whole seconds; "
        "origin time = edge time + 0.05-0.95 s, truncated), request line `METHOD <path as sent>[?query "
        "if forwarded] HTTP/1.1`, `$remote_addr` a CloudFront address from "
        f"{cf_ranges} (three fixed addresses per edge location), `$http_x_forwarded_for` = the viewer, "
        "or `<what the viewer sent>, <viewer>`. The viewer's User-Agent and Referer are forwarded. "
        "nginx's main format has no Host and no X-Amz-Cf-Id, so there is no exact join key.",
        "X-Forwarded-For sent by viewers: the forged `203.0.113.77` (actor), the corporate proxy "
        "`10.44.3.19`, and ordinary proxies (`10.44.7.201`, `192.168.20.14`, `172.16.4.31, 10.8.0.12`). "
        "Only CloudFront's ranges are trusted; the client is `c-ip` at the edge and the rightmost "
        "untrusted XFF entry at the origin.",
        "Origin files: `access.log-20221129.gz` holds local 2022-11-28 00:00-23:59:59 and `access.log` "
        "(plain) 2022-11-29 00:00-02:00, both `-0500`, in time order. Health checks every 60 s from "
        f"each of {' and '.join(HEALTH_CHECKERS)} (`GET /healthz`, `ELB-HealthChecker/2.0`).",
        'nginx traps: a TLS ClientHello on the plain port (`"\\x16\\x03\\x01\\x02\\x00..."` 400 '
        f'{NGINX_400}), an empty request line `""` 400 0, a missing one `"-"` 400 0, a user agent '
        "with escaped quotes (`\\x22><script>`, from 80.94.92.40, also through the CDN as `%22%3E%3Cscript%3E`), "
        "the Expanse scanner UA with `&#39;`, and `POST /boaform/admin/formLogin`.",
        "Direct-to-origin clients (no CloudFront): the two actors `95.216.142.33` (complete) and "
        "`3.89.217.64` (499, partial), plus scanners (Censys, Expanse, zgrab, curl).",
        "Other addresses of actors appear in ordinary traffic too: `4.31.166.20` (agency HQ) browses "
        "the site all day and `66.249.66.83` crawls other pages; only requests for the resource count.",
        "CloudFront `time` is whole seconds and marks the end of the response (the 1.5 MB download "
        "over Tor took ~10 s, see its `time-taken`); nginx `$time_local` is when the line was logged.",
    ]:
        w(f"- {item}")
    w("")
    return "\n".join(out)


def follow_up_section(reqs: list[Req], w: Any) -> None:
    """SCENARIO.md's expected follow-up: operators, likely the same downloader, the spread."""
    nets = seed_networks()
    people = [a for a in ACTORS if a.outcome != NEAR_MISS]
    own = {a.key: resource_requests(reqs, a.key) for a in people}
    w("## Beyond the list: expected follow-up\n")
    w("### Requests to network operators\n")
    per_net: dict[tuple[int, str], tuple[set[str], int]] = {}
    for a in people:
        net = network_of(a.addr, nets) or (0, "unknown")
        addrs, n = per_net.get(net, (set(), 0))
        per_net[net] = (addrs | {a.addr}, n + len(own[a.key]))
    direct = [a.addr for a in people if all(r.via == "direct" for r in own[a.key])]
    total = sum(len(v) for v in own.values())
    w(
        f"{total} counted requests from {len(people)} addresses in {len(per_net)} networks (the demo seed's "
        "autonomous systems), one row each in `operator_requests.csv`. CloudFront logs the viewer's "
        "`c-port`, so every edge row has a port; nginx's `main` format logs none, so the "
        f"{len(direct)} direct-to-origin rows ({', '.join(f'`{d}`' for d in direct)}) have no port, and "
        "the report says that without a port a carrier-grade-NAT address may not identify a subscriber. "
        "Times are whole seconds (CloudFront's `time`, nginx's `$time_local`).\n"
    )
    w("| network | addresses | requests |")
    w("|---|---|---|")
    for (asn, org), (addrs, n) in sorted(per_net.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        w(f"| AS{asn} {org} | {len(addrs)} | {n} |")
    w("")
    w("### Likely the same downloader (suggestions)\n")
    w(
        f"Rules at their defaults: same IPv6 /{IPV6_PREFIX}; same user agent and network (ASN) within "
        f"{AGENT_NETWORK_WITHIN // 60} min (crawlers and preview bots left out); byte ranges that continue each "
        f"other within {RANGES_WITHIN // 60} min with the same user agent and never overlap. Each address keeps its "
        "own outcome; the group is complete when a member is, or when the members' ranges together cover "
        "the file.\n"
    )
    w("| group | addresses (own outcome) | joined by | group outcome |")
    w("|---|---|---|---|")
    links = derive_links(reqs)
    by_addr = {a.addr: a for a in people}
    for group in sorted(derive_groups(links), key=lambda g: min(own[by_addr[x].key][0].t for x in g)):
        members = sorted(group, key=lambda x: own[by_addr[x].key][0].t)
        rules = sorted({rule for x, y, rule in links if x in group})
        outcomes = [by_addr[x].outcome for x in members]
        ranges = sorted(r.out_range for x in members for r in own[by_addr[x].key] if r.status == "206" and r.out_range)
        reach = -1
        for first, last in ranges:
            if first <= reach + 1:
                reach = max(reach, last)
        if COMPLETE in outcomes:
            verdict = "**complete** (a member has the whole file)"
        elif reach >= LEAK_SIZE - 1:
            verdict = "**complete** (only the ranges together cover the file)"
        else:
            verdict = PARTIAL if PARTIAL in outcomes else outcomes[0]
        person = by_addr[members[0]].person
        addrs = "<br>".join(f"`{x}` ({by_addr[x].outcome})" for x in members)
        w(f"| {person} | {addrs} | {', '.join(f'`{r}`' for r in rules)} | {verdict} |")
    w("")
    w("### How the link spread\n")
    sp = spread(reqs)
    w(
        "Referring pages of the counted requests for the file over the window and margin, in order of "
        "first appearance (`agency` = the resource's hosts; `[agency] networks` in case.toml names the "
        "agency's own egress `4.31.166.0/24`):\n"
    )
    w("| # | referer | first seen | first address |")
    w("|---|---|---|---|")
    for i, (ref, (t, addr)) in enumerate(sp["referers"], start=1):
        w(f"| {i} | `{ref}` | {hms(t)} ({utc_hms(t)}) | `{addr}` |")
    w("")
    f = sp["first_external_download"]
    w(
        f"First download by an outsider (not an agency address, not a crawler or preview bot): "
        f"`{f.client}` at {hms(f.t)} ({utc_hms(f.t)}), referer `{f.referer or '(none)'}`. Before it, the agency "
        "editor and Googlebot had the file, and Slackbot asked for headers.\n"
    )
    w("Deliveries (requests that sent bytes of the file) per UTC hour and referring site:\n")
    w("| hour (UTC) | referring site | deliveries |")
    w("|---|---|---|")
    for (hour, site), n in sp["hourly"]:
        w(f"| {hour} | `{site}` | {n} |")
    w("")
    w("Crawlers, archives and preview bots that requested the file:\n")
    for a in sp["bots"]:
        w(f"- `{a.addr}` ({a.network}): {a.outcome}. {a.story}")
    w("")


def expected_csv(reqs: list[Req]) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["client", "outcome", "actor", "first_request_utc", "last_request_utc", "requests", "person"])
    lo, hi = WINDOW_START - MARGIN, WINDOW_END + MARGIN
    for a in ACTORS:
        if a.outcome == NEAR_MISS:
            continue
        own = [
            r for r in reqs if r.actor == a.key and unquote(r.path) == LEAK and lo <= r.t <= hi and r.proto == "https"
        ]
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        wr.writerow(
            [
                a.addr,
                a.outcome,
                a.key,
                datetime.fromtimestamp(int(own[0].t), UTC).strftime(fmt),
                datetime.fromtimestamp(int(own[-1].t), UTC).strftime(fmt),
                len(own),
                a.person,
            ]
        )
    return buf.getvalue()


def main() -> None:
    for a in ACTORS:  # canonical spelling of every address
        assert a.addr == str(ipaddress.ip_address(a.addr)), a.addr
    assert len({a.addr for a in ACTORS}) == len(ACTORS)
    traffic = Traffic(random.Random(f"{SEED}-traffic"), [a.addr for a in ACTORS])
    traffic.browsers(330)
    traffic.proxied_browsers()
    traffic.agency_staff()
    traffic.bots()
    traffic.scanners()
    traffic.direct_noise()
    traffic.health()
    actor_reqs = actor_requests(random.Random(f"{SEED}-actors"), traffic)  # adds preludes to traffic
    reqs = traffic.reqs + actor_reqs
    for i, r in enumerate(reqs):
        r.seq = i
    reqs.sort(key=lambda r: (r.t, r.seq))
    sim = Simulation(random.Random(f"{SEED}-edge"))
    sim.run(reqs)
    files = write_all(reqs, sim, random.Random(f"{SEED}-files"))
    check(reqs, files)
    files["case.toml"] = CASE_TOML.encode()
    files["SCENARIO.md"] = scenario(reqs, {k: v for k, v in files.items() if "/" in k}).encode()
    files["expected_downloaders.csv"] = expected_csv(reqs).encode()
    for old in sorted((HERE / "cdn").glob(f"{DIST_ID}.*.gz")) + sorted((HERE / "origin").glob("access.log*")):
        old.unlink()
    for name, data in files.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    total = sum(len(v) for v in files.values())
    print(
        f"wrote {len(files)} files, {total} bytes, {sum(1 for r in reqs if r.via == 'cdn')} edge records, "
        f"{sum(1 for r in reqs if r.origin is not None)} origin lines"
    )


if __name__ == "__main__":
    main()
