"""The one place that owns the case database's tables and columns.

Every reader fills the canonical `requests` columns below and nothing else; what a format logs
beyond them goes, by its own name, into the JSON column `extra`. The DDL, the polars schema the
readers build, `forensics schema` and the report's method section are all generated from here.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

# Bumped whenever a table or column changes meaning, so that a case folder written by another
# version is refused instead of being read with the wrong columns.
SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    doc: str
    # DuckDB's storage compression for the column, where its default costs more than it gives.
    compression: str | None = None

    @property
    def polars_type(self) -> pl.DataType:
        return _POLARS_TYPES[self.sql_type]


_POLARS_TYPES: dict[str, pl.DataType] = {
    "INTEGER": pl.Int32(),
    "SMALLINT": pl.Int16(),
    "BIGINT": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "VARCHAR": pl.String(),
    "JSON": pl.String(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMPTZ": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]

    def ddl(self, name: str | None = None) -> str:
        """CREATE TABLE for this table, or for a table of the same columns named `name`."""
        cols = ",\n  ".join(
            f"{c.name} {c.sql_type}" + (f" USING COMPRESSION {c.compression}" if c.compression else "")
            for c in self.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} (\n  {cols}\n)"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.polars_type for c in self.columns}


REQUESTS = Table(
    "requests",
    "One row per logged HTTP request, from every source, in canonical columns.",
    (
        Column("source_id", "INTEGER", "The file the line came from (sources.source_id)."),
        Column("line_no", "BIGINT", "Line number in the decompressed file, counting from 1."),
        Column("ts", "TIMESTAMPTZ", "When the request was logged, in UTC (offsets applied)."),
        Column(
            "client_addr",
            "VARCHAR",
            "The client address as the line gives it (the viewer at a CDN edge; at an origin "
            "behind a CDN, the CDN's address). Not yet resolved through X-Forwarded-For.",
        ),
        Column("client_port", "INTEGER", "The client's source port, where logged."),
        Column(
            "peer_addr",
            "VARCHAR",
            "The TCP peer where the format says which field holds it; for Apache %h and nginx "
            "$remote_addr the same as client_addr unless a real-IP module rewrote it.",
        ),
        Column("xff", "VARCHAR", "The raw X-Forwarded-For list as logged (left = claimed by client)."),
        Column("remote_user", "VARCHAR", "Authenticated user name, where logged."),
        Column("method", "VARCHAR", "HTTP method (GET, HEAD, ...)."),
        Column("scheme", "VARCHAR", "http or https, where logged."),
        Column("host", "VARCHAR", "Host header or virtual host, where logged."),
        Column("path", "VARCHAR", "Request path exactly as logged (not decoded)."),
        Column("query", "VARCHAR", "Query string without '?', as logged."),
        Column("protocol", "VARCHAR", "HTTP version (HTTP/1.1, HTTP/2.0, ...)."),
        Column(
            "status",
            "SMALLINT",
            "HTTP status sent; 0 where the client closed before a status (CloudFront 000).",
        ),
        Column("body_bytes", "BIGINT", "Response body bytes sent, where the format logs them."),
        Column("total_bytes", "BIGINT", "Response bytes sent including headers, where logged."),
        Column("range_start", "BIGINT", "First byte of a range response (206), where logged."),
        Column("range_end", "BIGINT", "Last byte of a range response, inclusive, where logged."),
        Column(
            "content_length",
            "BIGINT",
            "Content-Length the server declared (the body it meant to send, not proof it was sent).",
        ),
        Column("object_size", "BIGINT", "Full size of the object served, where logged (S3, Content-Range)."),
        Column("content_type", "VARCHAR", "Response Content-Type, where logged."),
        Column(
            "cache_status",
            "VARCHAR",
            "Cache result normalised across vendors: hit, miss, refresh_hit, pass, expired, "
            "stale, revalidated, error, redirect, generated, or NULL.",
        ),
        Column("cache_status_raw", "VARCHAR", "The cache result as the vendor wrote it."),
        Column("edge_location", "VARCHAR", "CDN point of presence that served the request."),
        Column("request_id", "VARCHAR", "Request id (x-edge-request-id, RayID, $request_id, ...)."),
        Column("referer", "VARCHAR", "Referer header, percent-decoded where the format encodes it."),
        Column("user_agent", "VARCHAR", "User-Agent header, percent-decoded where the format encodes it."),
        Column("time_taken_ms", "DOUBLE", "Time to serve the request, in milliseconds."),
        Column(
            "extra",
            "JSON",
            "Every logged field that has no canonical column, by its own name.",
            # Long JSON objects with the same keys on every row: DuckDB's default string
            # compression (dictionary + FSST) spends about twice the CPU of zstd on them when
            # the rows are stored and gives a file several times larger. Stages read it only
            # for the few candidate rows.
            compression="zstd",
        ),
    ),
)

# `requests` is stored in parts and read through a view of that name. DuckDB spends about as
# much storing a column that is NULL on every row as one with values (the null columns were a
# third of the time storing 2M combined-format rows, which fill 13 of the 30 columns): rows are
# kept in a table of the columns they fill, and the view gives every row every column, NULL
# where its part has none. `requests_all` has every column and takes what fits no other part.
REQUESTS_ALL = "requests_all"
REQUEST_PART_PREFIX = "requests_"


def request_part_name(columns: Iterable[str]) -> str:
    """The part for rows filling exactly `columns`: named by a digest of the set, so that a set
    has the same part whatever the order in which a case's files are loaded."""
    filled = sorted(set(columns))
    if set(filled) >= set(REQUESTS.column_names):
        return REQUESTS_ALL
    return REQUEST_PART_PREFIX + hashlib.sha256(",".join(filled).encode()).hexdigest()[:10]


def request_part_ddl(name: str, columns: Iterable[str]) -> str:
    """A part with these of the requests columns (in the table's order, with its types)."""
    keep = set(columns)
    cols = ",\n  ".join(
        f"{c.name} {c.sql_type}" + (f" USING COMPRESSION {c.compression}" if c.compression else "")
        for c in REQUESTS.columns
        if c.name in keep
    )
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  {cols}\n)"


def requests_view_ddl(parts: Mapping[str, Iterable[str]]) -> str:
    """The `requests` view over the parts: every column of every row, NULL where a part has no
    such column. (Names are ours, from request_part_name, never input.)"""
    selects = []
    for name in sorted(parts, key=lambda n: (n != REQUESTS_ALL, n)):
        has = set(parts[name])
        cols = ", ".join(
            c.name if c.name in has else f"CAST(NULL AS {c.sql_type}) AS {c.name}" for c in REQUESTS.columns
        )
        selects.append(f"SELECT {cols} FROM {name}")
    return f"CREATE OR REPLACE VIEW {REQUESTS.name} AS\n" + "\nUNION ALL\n".join(selects)


SOURCES = Table(
    "sources",
    "One row per input file, with its hash and how every line of it was accounted for.",
    (
        Column("source_id", "INTEGER", "Identifier used by requests.source_id and rejects.source_id."),
        Column(
            "path",
            "VARCHAR",
            "The file, relative to the case file's folder (never an absolute path of the investigator's machine).",
        ),
        Column(
            "status",
            "VARCHAR",
            "loaded (its lines are in requests, rejects and skipped_lines), empty (no bytes), or duplicate "
            "(the same bytes as the file duplicate_of; not loaded twice).",
        ),
        Column("duplicate_of", "INTEGER", "For a duplicate: the source_id of the file with the same bytes."),
        Column(
            "settings",
            "JSON",
            "The case-file settings that shaped the file's rows (format as named and as resolved, time zone, "
            "fields, role); a change reloads the file.",
        ),
        Column("sha256", "VARCHAR", "SHA-256 of exactly the bytes that were read (compressed bytes as stored)."),
        Column("size_bytes", "BIGINT", "Number of bytes that were read (the file as stored)."),
        Column("compression", "VARCHAR", "none, gzip, bzip2, xz or zstd."),
        Column("format", "VARCHAR", "Format name used to read it."),
        Column("format_detected", "BOOLEAN", "True when the format was detected, false when named."),
        Column("role", "VARCHAR", "cdn (viewer-facing edge) or origin."),
        Column("source_timezone", "VARCHAR", "Zone applied to zone-less timestamps, if any."),
        Column("lines_read", "BIGINT", "Lines in the decompressed file."),
        Column("lines_parsed", "BIGINT", "Lines that became rows of requests."),
        Column("lines_rejected", "BIGINT", "Lines kept in rejects with a reason."),
        Column(
            "lines_skipped",
            "BIGINT",
            "Lines that are not requests by the format's own rules (W3C directives, blank lines).",
        ),
        Column("first_ts", "TIMESTAMPTZ", "Earliest request time in the file."),
        Column("last_ts", "TIMESTAMPTZ", "Latest request time in the file."),
        Column("truncated", "BOOLEAN", "True when the compressed stream ended early."),
        Column("note", "VARCHAR", "What went wrong reading the file, if anything."),
        Column("ingested_at", "TIMESTAMPTZ", "When the file was loaded."),
        Column("requests", "BIGINT", "Rows of requests from the file (a JSON line can hold several records)."),
        Column(
            "last_line_complete",
            "BOOLEAN",
            "True when the file's last line ended with a newline; a grown file is then loaded from the next line on.",
        ),
        Column("mtime", "TIMESTAMPTZ", "The file's modification time when it was read."),
    ),
)

REJECTS = Table(
    "rejects",
    "Every line that could not be read as a request, with why.",
    (
        Column("source_id", "INTEGER", "The file (sources.source_id)."),
        Column("line_no", "BIGINT", "Line number in the decompressed file."),
        Column("reason", "VARCHAR", "Why the line was not read."),
        Column("line", "VARCHAR", "The line; bytes that are not UTF-8 are shown as \\xHH."),
    ),
)

SKIPPED = Table(
    "skipped_lines",
    "Counts of lines that are not requests by the format's own rules, per file and kind.",
    (
        Column("source_id", "INTEGER", "The file (sources.source_id)."),
        Column("kind", "VARCHAR", "blank, directive (W3C #Fields, #Version...), or non-access log line."),
        Column("lines", "BIGINT", "How many."),
    ),
)

CASE_INFO = Table(
    "case_info",
    "Key/value facts about the case: name, display zone, case file hash, tool version.",
    (
        Column("key", "VARCHAR", "Name of the fact."),
        Column("value", "VARCHAR", "Its value (JSON for structured values)."),
    ),
)

INGEST_TABLES: tuple[Table, ...] = (CASE_INFO, SOURCES, REQUESTS, REJECTS, SKIPPED)

HITS = Table(
    "hits",
    "Every logged request for a leaked resource, linked to its requests row, with how it matched, "
    "who the real client was and whether it counts on its own.",
    (
        Column("source_id", "INTEGER", "The file (requests.source_id)."),
        Column("line_no", "BIGINT", "The line (requests.line_no)."),
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("role", "VARCHAR", "cdn or origin: the role of the source the line came from."),
        Column("ts", "TIMESTAMPTZ", "When the request was logged, in UTC."),
        Column(
            "match_how",
            "VARCHAR",
            "How the logged path matched the resource: exact, decoded (percent-decoded once), "
            "double_decoded (encoded twice, e.g. %252D), normalised (duplicate slashes or dot "
            "segments), case_folded (only a case-insensitive match).",
        ),
        Column(
            "window_position",
            "VARCHAR",
            "exposure (inside [start, end]), margin (inside the margin around it) or outside.",
        ),
        Column("peer_ip", "VARCHAR", "The TCP peer, normalised (at an origin behind a CDN, the CDN)."),
        Column(
            "client_ip",
            "VARCHAR",
            "The real client, normalised: the viewer at a CDN edge, else the first untrusted "
            "X-Forwarded-For entry from the right behind a trusted proxy, else the peer. NULL when "
            "every entry was trusted or the list was empty.",
        ),
        Column(
            "client_basis",
            "VARCHAR",
            "Where client_ip came from: viewer (CDN log), peer (direct connection), "
            "forwarded_for (walked from the right through trusted proxies), unknown.",
        ),
        Column(
            "claimed_forwarded_for",
            "VARCHAR",
            "X-Forwarded-For entries the client itself sent (left of the client): never the client.",
        ),
        Column("client_flags", "VARCHAR[]", "Reader-word flags from resolving the client."),
        Column("linked_source_id", "INTEGER", "For an origin row relayed by the CDN: the edge row's file."),
        Column("linked_line_no", "BIGINT", "For an origin row relayed by the CDN: the edge row's line."),
        Column("linked_by", "VARCHAR", "request_id or time (client, resource, time tolerance)."),
        Column(
            "counts",
            "BOOLEAN",
            "True when the row stands for what a client received: edge rows, origin rows not "
            "linked to an edge row. Linked origin rows are the same request seen twice.",
        ),
    ),
)

DOWNLOADERS = Table(
    "downloaders",
    "One row per resource and resolved client address over the exposure window and margin: what "
    "the client received (complete, partial, failed, headers_only) and how sure that is.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("client_ip", "VARCHAR", "The resolved client address (NULL when it is unknown)."),
        Column(
            "outcome",
            "VARCHAR",
            "complete, partial, failed, headers_only, or undetermined when the client received "
            "bytes but the file's size is unknown (outcome_reason says why).",
        ),
        Column(
            "confidence",
            "VARCHAR",
            "confirmed, or probable when completeness rests on byte counts without logged ranges "
            "or on CloudFront byte counts that include headers.",
        ),
        Column("first_seen", "TIMESTAMPTZ", "First counted request, UTC."),
        Column("last_seen", "TIMESTAMPTZ", "Last counted request, UTC."),
        Column("requests", "BIGINT", "Counted requests (a request seen at edge and origin counts once)."),
        Column(
            "bytes_received",
            "BIGINT",
            "Bytes transferred: body bytes of the resource sent to the client, summed over its "
            "requests (overlapping ranges and repeat downloads count again, so this can exceed the "
            "size; at a CloudFront edge an estimate, see forensics/queries/stage_downloaders.sql).",
        ),
        Column(
            "file_bytes_covered",
            "BIGINT",
            "Distinct bytes of the file received: the union of the byte ranges sent, never more "
            "than the size. coverage_pct is this share of the file.",
        ),
        Column(
            "coverage_pct",
            "DOUBLE",
            "Share of the file's bytes the client received, 0-100 (NULL when the size is unknown).",
        ),
        Column("resource_size", "BIGINT", "The size the outcome was judged against (NULL when unknown)."),
        Column(
            "outcome_reason",
            "VARCHAR",
            "Why the outcome could not be decided (undetermined), and what would decide it; NULL otherwise.",
        ),
        Column("statuses", "VARCHAR[]", "Distinct HTTP statuses of the counted requests."),
        Column("user_agents", "VARCHAR[]", "Distinct User-Agent values."),
        Column("referers", "VARCHAR[]", "Distinct Referer values."),
        Column("sources", "VARCHAR[]", "Roles of the logs that saw the client (cdn, origin)."),
        Column("claimed_forwarded_for", "VARCHAR[]", "X-Forwarded-For entries the client sent (not trusted)."),
        Column(
            "flags",
            "VARCHAR[]",
            "Reader-word flags: forwarded_for_claimed, went_around_cdn, ..., and from enrichment "
            "verified_crawler:<name>, claimed_crawler, cloud:<provider>, tor_exit, vpn, demo_geography.",
        ),
        # Enrichment (filled from ip_enrichment when the run enriches; NULL otherwise).
        Column("country", "VARCHAR", "ISO country code of the client address (IP database)."),
        Column("country_name", "VARCHAR", "Country name."),
        Column("city", "VARCHAR", "City, where the database has one."),
        Column("asn", "BIGINT", "Autonomous system number of the network."),
        Column("as_org", "VARCHAR", "Organisation that holds the autonomous system."),
        Column("client_kind", "VARCHAR", "browser, crawler, tool, library, preview bot, empty (from user agents)."),
        Column("client_name", "VARCHAR", "Which browser, crawler or tool."),
        Column("cloud_provider", "VARCHAR", "Cloud or CDN provider whose published ranges hold the address."),
        Column("crawler", "VARCHAR", "Crawler the user agent claims to be."),
        Column("crawler_verified", "BOOLEAN", "True when the address is in that crawler's published ranges."),
        Column("tor_exit", "BOOLEAN", "True when a Tor exit list saw the address within 24 h of the request."),
        Column("vpn", "BOOLEAN", "Anonymity database: VPN."),
        Column("hosting", "BOOLEAN", "Anonymity database: hosting provider."),
    ),
)

NEAR_MISSES = Table(
    "near_misses",
    "Requests that are not downloads of the resource but matter to the investigator: the resource "
    "outside the window and margin, other hosts, the folder it sits in, and similar file names.",
    (
        Column("resource_path", "VARCHAR", "The resource these requests are near."),
        Column(
            "kind",
            "VARCHAR",
            "resource_outside_window, resource_other_host, same_folder, similar_name.",
        ),
        Column("path", "VARCHAR", "The path as logged."),
        Column("status", "SMALLINT", "HTTP status."),
        Column("window_position", "VARCHAR", "exposure, margin or outside."),
        Column("requests", "BIGINT", "How many requests."),
        Column("clients", "BIGINT", "Distinct logged client addresses (not resolved through proxies)."),
        Column("first_seen", "TIMESTAMPTZ", "First request, UTC."),
        Column("last_seen", "TIMESTAMPTZ", "Last request, UTC."),
    ),
)

COVERAGE = Table(
    "coverage",
    "Log lines per source role and hour over the exposure window and margin; a gap is an hour "
    "without lines from a role that has lines before and after it.",
    (
        Column("role", "VARCHAR", "cdn or origin."),
        Column("hour_start", "TIMESTAMPTZ", "Start of the hour, UTC."),
        Column("lines", "BIGINT", "Requests logged in that hour by sources of that role."),
        Column("is_gap", "BOOLEAN", "No lines although the role has lines before and after."),
    ),
)

REQUEST_TIMELINE = Table(
    "request_timeline",
    "Requests logged per bin of the report's timeline over the exposure window and margin, from "
    "every source: the report draws its chart from this small table, whichever engine holds `requests`.",
    (
        Column("bin_start", "TIMESTAMPTZ", "Start of the bin, UTC; bins run from the start of the margin."),
        Column("requests", "BIGINT", "Requests logged in the bin."),
    ),
)

LOG_GAPS = Table(
    "log_gaps",
    "Stretches of the examined period that a log role or format may be missing, at the logs' own "
    "resolution: silent runs of 5-minute bins where the log's neighbouring rate expects lines, "
    "delivery files missing from a named series, and logs that start late or end early.",
    (
        Column("role", "VARCHAR", "cdn or origin."),
        Column("format", "VARCHAR", "The log format (NULL when the gap concerns every format of the role)."),
        Column(
            "kind",
            "VARCHAR",
            "silent_stretch (no lines in consecutive bins), missing_delivery_file (a file of a "
            "time-named series is absent), starts_late, ends_early, no_log (nothing covers the period).",
        ),
        Column("gap_start", "TIMESTAMPTZ", "Start of the stretch, UTC."),
        Column("gap_end", "TIMESTAMPTZ", "End of the stretch, UTC."),
        Column(
            "expected_lines",
            "DOUBLE",
            "Lines the log's own neighbouring rate expects in the stretch (NULL when it has no rate).",
        ),
        Column(
            "chance",
            "DOUBLE",
            "Chance of seeing no line at all in the stretch at that rate (Poisson, exp(-expected)): "
            "how unusual the silence is. NULL when there is no rate.",
        ),
        Column("detail", "VARCHAR", "The gap in words, for the report and the terminal."),
    ),
)

HIT_REQUESTS = Table(
    "hit_requests",
    "The requests rows of every hit, copied once after the hits are found, so that the later stages "
    "read these few rows instead of joining the whole requests table again.",
    REQUESTS.columns,
)

CLIENT_VALUES = Table(
    "client_values",
    "Working table of the investigation, emptied once the downloaders are written: each resource's "
    "clients' distinct values of each kind (statuses, user agents, referrers, flags, claimed "
    "forwarded-for addresses), from which the downloaders' lists are built a share of the clients "
    "at a time.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("client_key", "VARCHAR", "The client: its address, or 'unknown via' the peer."),
        Column("kind", "VARCHAR", "status, user_agent, referer, client_flag or claimed_forwarded_for."),
        Column("value", "VARCHAR", "One distinct value of that kind."),
    ),
)

CLIENT_LISTS = Table(
    "client_lists",
    "Working table of the investigation, emptied once the downloaders are written: each client's "
    "lists of distinct values, sorted, as `downloaders` shows them.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("client_key", "VARCHAR", "The client: its address, or 'unknown via' the peer."),
        Column("statuses", "VARCHAR[]", "Distinct HTTP statuses."),
        Column("user_agents", "VARCHAR[]", "Distinct User-Agent values."),
        Column("referers", "VARCHAR[]", "Distinct Referer values."),
        Column("client_flags", "VARCHAR[]", "Distinct flags from resolving the client."),
        Column("claimed_forwarded_for", "VARCHAR[]", "Distinct claimed X-Forwarded-For addresses."),
    ),
)

INVESTIGATION_TABLES: tuple[Table, ...] = (
    HITS, HIT_REQUESTS, CLIENT_VALUES, CLIENT_LISTS, DOWNLOADERS, NEAR_MISSES, COVERAGE, REQUEST_TIMELINE, LOG_GAPS,
)

IP_ENRICHMENT = Table(
    "ip_enrichment",
    "One row per client address: where it was, whose network it used and what kind of client it "
    "was, from IP databases, published network lists and its user agents, each value with its source.",
    (
        Column("address", "VARCHAR", "The client address as the investigation gave it."),
        Column("seen_first", "TIMESTAMPTZ", "Earliest time the address was seen (UTC), used for Tor matching."),
        Column("seen_last", "TIMESTAMPTZ", "Latest time the address was seen (UTC)."),
        Column("country", "VARCHAR", "ISO 3166-1 alpha-2 country of the address's location."),
        Column("country_name", "VARCHAR", "Country name in English."),
        Column("subdivision", "VARCHAR", "First-level subdivision (state, region), in English."),
        Column("city", "VARCHAR", "City, in English."),
        Column("latitude", "DOUBLE", "Approximate latitude (the database's, with its accuracy radius)."),
        Column("longitude", "DOUBLE", "Approximate longitude."),
        Column("asn", "BIGINT", "Autonomous system number of the network announcing the address."),
        Column("as_org", "VARCHAR", "Organisation of that autonomous system."),
        Column("anonymous", "BOOLEAN", "A database calls the address anonymous (VPN, proxy, Tor, hosting)."),
        Column("vpn", "BOOLEAN", "A database calls the address a VPN exit."),
        Column("hosting", "BOOLEAN", "A database calls the address a hosting or data-centre address."),
        Column("tor", "BOOLEAN", "A database calls the address a Tor node (not time-matched)."),
        Column("public_proxy", "BOOLEAN", "A database calls the address an open proxy."),
        Column("residential_proxy", "BOOLEAN", "A database calls the address a residential proxy exit."),
        Column("cloud_provider", "VARCHAR", "Cloud or CDN whose published ranges hold the address (aws, gcp, ...)."),
        Column("cloud_service", "VARCHAR", "Service and region as the provider's list names them."),
        Column("crawler", "VARCHAR", "Crawler the user agent claims to be (googlebot, bingbot, ...)."),
        Column(
            "crawler_verified",
            "BOOLEAN",
            "True when the address is in that crawler's published ranges (or its reverse DNS is "
            "forward-confirmed under the owner's domain); false when only claimed; NULL without a claim.",
        ),
        Column("crawler_verified_by", "VARCHAR", "The list or the confirmed host name that verified the claim."),
        Column("tor_exit", "BOOLEAN", "A Tor exit list saw the address as an exit within 24 h of when it was seen."),
        Column("tor_exit_observed", "TIMESTAMPTZ", "The nearest Tor exit observation of the address (UTC)."),
        Column("client_kind", "VARCHAR", "browser, crawler, link_preview, tool, unknown or empty (from user agents)."),
        Column("client_name", "VARCHAR", "Which crawler, tool or preview bot (curl, slackbot, ...)."),
        Column("rdns_hostname", "VARCHAR", "Forward-confirmed reverse DNS name, when --rdns was asked for."),
        Column(
            "flags",
            "VARCHAR[]",
            "Reader words: verified_crawler:NAME, claimed_crawler, cloud:NAME, tor_exit, vpn, ...",
        ),
        Column("value_sources", "JSON", "For each filled column, the database or list (and its date) that gave it."),
    ),
)

ENRICHMENT_SOURCES = Table(
    "enrichment_sources",
    "Every IP database and published list the enrichment used, with its date and hash.",
    (
        Column("source", "VARCHAR", "database or list."),
        Column("name", "VARCHAR", "File name."),
        Column("type", "VARCHAR", "database_type of a database; the list's format name."),
        Column("kind", "VARCHAR", "Recognised kind (maxmind-city, ipinfo-lite, ...) or the list's category."),
        Column("built", "TIMESTAMPTZ", "Build date of a database; the list's own date."),
        Column("date_basis", "VARCHAR", "Where that date came from (build_epoch, createDate, file mtime, ...)."),
        Column("sha256", "VARCHAR", "SHA-256 of the file."),
        Column("path", "VARCHAR", "Absolute path of the file."),
        Column("fetched_from", "VARCHAR", "URL the list was downloaded from, when `lists update` fetched it."),
        Column("entries", "BIGINT", "Prefixes or Tor exit observations in a list."),
        Column("demo", "BOOLEAN", "Demo data, not real geography."),
    ),
)

RDNS_CACHE = Table(
    "rdns_cache",
    "Forward-confirmed reverse DNS answers, so a rerun asks the resolver nothing again.",
    (
        Column("address", "VARCHAR", "The address looked up."),
        Column("hostname", "VARCHAR", "Its PTR name, if any."),
        Column("confirmed", "BOOLEAN", "The name resolves back to the address."),
        Column("error", "VARCHAR", "Why it is not confirmed."),
        Column("looked_up_at", "TIMESTAMPTZ", "When the resolver was asked."),
    ),
)

ENRICHMENT_TABLES: tuple[Table, ...] = (IP_ENRICHMENT, ENRICHMENT_SOURCES, RDNS_CACHE)

# --- follow-up: requests to network operators, likely the same downloader, how the link spread ---

OPERATOR_REQUESTS = Table(
    "operator_requests",
    "One row per counted request of every downloader, grouped by network operator, with what an "
    "operator needs to identify a subscriber: the address, the client port where the log has one, "
    "the UTC time and the log line it came from.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("asn", "BIGINT", "Autonomous system number of the client address (IP database); NULL when unknown."),
        Column("as_org", "VARCHAR", "Organisation holding that autonomous system: the operator to ask."),
        Column("country", "VARCHAR", "ISO country code of the address (IP database)."),
        Column("client_ip", "VARCHAR", "The resolved client address."),
        Column(
            "client_port",
            "INTEGER",
            "The client's source port as logged (CloudFront c-port, ALB client:port, Cloudflare "
            "ClientSrcPort, ...). NULL when the format logs none, and for origin lines whose client "
            "came from X-Forwarded-For (their port is the proxy's).",
        ),
        Column("ts", "TIMESTAMPTZ", "When the request was logged, UTC."),
        Column(
            "time_precision",
            "VARCHAR",
            "second, or millisecond when the source file logs fractions of a second (any of its "
            "times has one).",
        ),
        Column("time_zone", "VARCHAR", "The zone of ts as written in the exports: always UTC."),
        Column("method", "VARCHAR", "HTTP method."),
        Column("status", "SMALLINT", "HTTP status sent (0: CloudFront 000, the viewer closed first)."),
        Column("outcome", "VARCHAR", "The client's outcome in the downloader list."),
        Column("role", "VARCHAR", "cdn or origin: the log the row came from."),
        Column("client_basis", "VARCHAR", "viewer, peer or forwarded_for (see hits.client_basis)."),
        Column("format", "VARCHAR", "Log format of the source file."),
        Column("port_logged", "BOOLEAN", "True when the source file's format logs the client port at all."),
        Column("source_file", "VARCHAR", "The log file as the case file named it (sources.path)."),
        Column("line_no", "BIGINT", "Line number in the decompressed file."),
        Column("source_sha256", "VARCHAR", "SHA-256 of the log file as stored."),
        Column("user_agent", "VARCHAR", "User-Agent of the request, to help the operator match it."),
    ),
)

DOWNLOADER_LINKS = Table(
    "downloader_links",
    "Pairs of downloader addresses that a documented rule says are probably one downloader: a "
    "suggestion for the investigator, never a change to either address's outcome.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("client_a", "VARCHAR", "One address (the smaller in text order)."),
        Column("client_b", "VARCHAR", "The other address."),
        Column(
            "rule",
            "VARCHAR",
            "same_ipv6_prefix (both in one IPv6 prefix of the configured length), "
            "same_agent_and_network (same user agent and autonomous system within the configured "
            "interval) or complementary_ranges (byte ranges that continue each other and never "
            "overlap, same user agent, within the configured interval).",
        ),
        Column("evidence", "VARCHAR", "What the rule saw: the prefix, the network and gap, or the two ranges."),
        Column("seconds_apart", "DOUBLE", "Time between the two addresses' requests the rule compared."),
    ),
)

DOWNLOADER_GROUPS = Table(
    "downloader_groups",
    "Addresses joined by downloader_links (transitively), one row per member: groups are "
    "suggestions; each member keeps its own outcome, and the group says whether the members "
    "together obtained a complete copy.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("group_id", "VARCHAR", "G1, G2, ... in order of the group's first request."),
        Column("client_ip", "VARCHAR", "A member address."),
        Column("outcome", "VARCHAR", "The member's own outcome (unchanged)."),
        Column("coverage_pct", "DOUBLE", "The member's own share of the file."),
        Column("first_seen", "TIMESTAMPTZ", "The member's first counted request, UTC."),
        Column("members", "BIGINT", "Addresses in the group."),
        Column(
            "group_outcome",
            "VARCHAR",
            "complete when a member is complete or the members' byte ranges together cover the "
            "file; else the best member outcome (partial, failed, headers_only).",
        ),
        Column(
            "group_complete_by",
            "VARCHAR",
            "member (one member has the whole file), ranges_together (only the members' ranges "
            "together cover it), or NULL.",
        ),
        Column("group_coverage_pct", "DOUBLE", "Share of the file covered by the members' byte ranges together."),
        Column("group_first_seen", "TIMESTAMPTZ", "The group's first counted request, UTC."),
        Column("group_last_seen", "TIMESTAMPTZ", "The group's last counted request, UTC."),
    ),
)

SPREAD_REQUESTS = Table(
    "spread_requests",
    "Every counted request for the resource over the exposure window and margin, with its "
    "referring site and who sent it (the agency, a crawler or preview bot, or an outsider): the "
    "rows the spread tables are counted from.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("ts", "TIMESTAMPTZ", "When, UTC."),
        Column("client_ip", "VARCHAR", "The resolved client address (NULL when unknown)."),
        Column("source_id", "INTEGER", "The log file (sources.source_id)."),
        Column("line_no", "BIGINT", "The line."),
        Column("method", "VARCHAR", "HTTP method."),
        Column("status", "SMALLINT", "HTTP status."),
        Column(
            "delivered",
            "BOOLEAN",
            "The response sent bytes of the file: a GET answered 200, 206, 000 (viewer closed) or "
            "499 with a body.",
        ),
        Column("referer", "VARCHAR", "The Referer as logged; '(none)' without one."),
        Column("referer_host", "VARCHAR", "The referer URL's host name, lower case."),
        Column("referer_site", "VARCHAR", "referer_host without a leading www.; '(none)' without a referer."),
        Column(
            "referer_kind",
            "VARCHAR",
            "agency (a page on the resource's hosts or the case's [agency] sites), external, or none.",
        ),
        Column(
            "client_party",
            "VARCHAR",
            "agency (an address in [agency] networks), crawler (a crawler, archive or preview bot by "
            "its user agent), or outsider.",
        ),
    ),
)

REFERRER_SPREAD = Table(
    "referrer_spread",
    "The pages and sites that sent people to the resource, in order of first appearance over the "
    "exposure window and margin.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("appearance", "BIGINT", "1 for the first referring page seen, 2 for the next, ..."),
        Column("referer", "VARCHAR", "The Referer as logged; '(none)' for requests without one."),
        Column("referer_site", "VARCHAR", "The referer's host name, lower case, without a leading www."),
        Column(
            "referer_kind",
            "VARCHAR",
            "agency (a page on the resource's hosts or the case's agency sites), external, or none.",
        ),
        Column("first_seen", "TIMESTAMPTZ", "First counted request with this referer, UTC."),
        Column("last_seen", "TIMESTAMPTZ", "Last one, UTC."),
        Column("first_client", "VARCHAR", "The address that sent it first."),
        Column("requests", "BIGINT", "Counted requests with this referer."),
        Column("clients", "BIGINT", "Distinct addresses that sent it."),
        Column("deliveries", "BIGINT", "Of the requests, those that sent bytes of the file (200, 206, 000, 499)."),
    ),
)

SPREAD_HOURLY = Table(
    "spread_hourly",
    "Requests and deliveries of the resource per UTC hour and referring site over the exposure "
    "window and margin.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("hour_start", "TIMESTAMPTZ", "Start of the hour, UTC."),
        Column("referer_site", "VARCHAR", "Referring site (referrer_spread.referer_site), '(none)' without a referer."),
        Column("requests", "BIGINT", "Counted requests."),
        Column("deliveries", "BIGINT", "Of them, those that sent bytes of the file."),
        Column("clients", "BIGINT", "Distinct addresses."),
    ),
)

SPREAD_MILESTONES = Table(
    "spread_milestones",
    "Moments of the spread: the first request, the first download, the first request and the "
    "first download by an outsider (not an agency address, not a crawler or preview bot), the "
    "first crawler, and the last download.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column(
            "milestone",
            "VARCHAR",
            "first_request, first_download, first_external_request, first_external_download, "
            "first_crawler_fetch, last_download.",
        ),
        Column("ts", "TIMESTAMPTZ", "When, UTC."),
        Column("client_ip", "VARCHAR", "Who."),
        Column("referer", "VARCHAR", "The Referer of that request."),
        Column("status", "SMALLINT", "Its HTTP status."),
        Column("source_file", "VARCHAR", "The log file (sources.path)."),
        Column("line_no", "BIGINT", "The line."),
    ),
)

CRAWLER_FETCHES = Table(
    "crawler_fetches",
    "Crawlers, archives and link-preview bots that requested the resource, with the operator "
    "and the page where the operator takes removal requests, where one is published.",
    (
        Column("resource_path", "VARCHAR", "The resource as the case file names it."),
        Column("client_ip", "VARCHAR", "The address."),
        Column("client_kind", "VARCHAR", "crawler or link_preview (from the user agent)."),
        Column("crawler", "VARCHAR", "Which crawler or bot (the user agent's claim)."),
        Column("verified", "BOOLEAN", "True when the address is in the operator's published ranges."),
        Column("outcome", "VARCHAR", "What it obtained."),
        Column("first_seen", "TIMESTAMPTZ", "First counted request, UTC."),
        Column("requests", "BIGINT", "Counted requests."),
        Column("operator", "VARCHAR", "Who runs it (forensics/crawler_operators.toml)."),
        Column(
            "removal_url",
            "VARCHAR",
            "Where the operator takes removal or refresh requests; NULL where none is known here.",
        ),
        Column("removal_note", "VARCHAR", "What to ask there."),
        Column("removal_source", "VARCHAR", "The page that documents it."),
    ),
)

FOLLOW_UP_TABLES: tuple[Table, ...] = (
    OPERATOR_REQUESTS, DOWNLOADER_LINKS, DOWNLOADER_GROUPS, SPREAD_REQUESTS, REFERRER_SPREAD, SPREAD_HOURLY,
    SPREAD_MILESTONES, CRAWLER_FETCHES,
)

ALL_TABLES: list[Table] = [*INGEST_TABLES, *INVESTIGATION_TABLES, *ENRICHMENT_TABLES, *FOLLOW_UP_TABLES]


@functools.cache
def _empty_requests() -> pl.DataFrame:
    return pl.DataFrame(schema=REQUESTS.polars_schema())


def empty_requests_frame() -> pl.DataFrame:
    """A requests frame with no rows. Built once: making a 30-column frame from a schema costs
    about 0.3 ms, which a case of many small files pays several times a file."""
    return _empty_requests().clear()
