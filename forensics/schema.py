"""The one place that owns the case database's tables and columns.

Every reader fills the canonical `requests` columns below and nothing else; what a format logs
beyond them goes, by its own name, into the JSON column `extra`. The DDL, the polars schema the
readers build, `forensics schema` and the report's method section are all generated from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    doc: str

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

    def ddl(self) -> str:
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols}\n)"

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
        Column("extra", "JSON", "Every logged field that has no canonical column, by its own name."),
    ),
)

SOURCES = Table(
    "sources",
    "One row per input file, with its hash and how every line of it was accounted for.",
    (
        Column("source_id", "INTEGER", "Identifier used by requests.source_id and rejects.source_id."),
        Column("path", "VARCHAR", "The file as the case file named it (relative to the case file)."),
        Column("abs_path", "VARCHAR", "Absolute path at ingest time."),
        Column("sha256", "VARCHAR", "SHA-256 of the file as stored (compressed bytes)."),
        Column("size_bytes", "BIGINT", "Size of the file as stored."),
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

ALL_TABLES: list[Table] = list(INGEST_TABLES)


def empty_requests_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=REQUESTS.polars_schema())
