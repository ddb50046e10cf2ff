"""The investigation: who obtained the leaked file, completely or in part (issue 3).

The stages run as SQL over the canonical tables (forensics/queries/stage_*.sql), so that a CDN-scale case can
run the same stages on another engine. Python only loads the case's parameters, orders the stages
and does the two things SQL cannot do cleanly, each over DISTINCT values, never per request:

- deciding whether a logged path names a resource (percent-decoding, dot segments, duplicate
  slashes, case), over the distinct paths that a cheap substring filter leaves;
- resolving the real client from the TCP peer and X-Forwarded-For with IP network membership
  (DuckDB's inet extension is not available offline), over the distinct address combinations.

Stages, in order: candidate paths -> hits -> real client -> edge/origin linking -> size ->
downloaders -> near misses -> log coverage and gaps -> the limits of the evidence.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import polars as pl

from forensics import coverage
from forensics.addresses import CANONICAL_IPV4
from forensics.casefile import Case, Resource, host_without_port
from forensics.engine import Engine, named
from forensics.engine.duckdb import DuckDBEngine
from forensics.errors import CaseFileError
from forensics.limits import BLOCKING, NOTE, WARNING, Limit, trusted_network_limits
from forensics.schema import CLIENT_LISTS, CLIENT_VALUES, INVESTIGATION_TABLES

OUTCOMES = ("complete", "partial", "undetermined", "failed", "headers_only")

# Response headers a server sends with a file download (status line, Date, Server, Content-Type,
# Content-Length, Last-Modified, ETag, Accept-Ranges, Connection, a CDN's own headers): the
# last-resort size is total bytes less this, when no HEAD or 304 of the resource shows the real
# header size. Outcomes judged with it are flagged size_estimated and probable.
TYPICAL_HEADER_BYTES = 400

# What each size signal is, in the reader's words (forensics/queries/stage_resource_size.sql).
SIZE_BASIS_TEXT = {
    "case file": "given in the case file",
    "object_size": "the object size the server logged",
    "content_length": "the Content-Length declared on 200 responses",
    "body_of_200": "the most common body size of complete (200) responses",
    "total_minus_headers": "total bytes of 200 responses less the response headers (an estimate)",
    "unknown": "no size in the case file and no log line gives one",
}

# Formats whose logger percent-encodes the request path on top of what the client sent. CloudFront
# encodes '%' itself as %25 (AWS "Standard log file format": URL-encoded equivalents for
# characters 0-32, 127+ and the table with %25), so a request for detention%2Droster.xlsx is
# logged as detention%252Droster.xlsx. One decoding gives back the request as sent.
LOGGER_ENCODES_PATH = frozenset({"cloudfront"})

# How far an origin line may precede (beyond the edge's own time-taken) or follow the CloudFront
# edge line it served, in seconds. See forensics/queries/stage_link_by_time.sql.
LINK_BEFORE_S = 2.0
LINK_AFTER_S = 30.0

_MATCH_ORDER = ("exact", "decoded", "normalised", "double_decoded", "case_folded")


# --- paths -----------------------------------------------------------------------------------


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, plus merging duplicate slashes as nginx does (merge_slashes on)."""
    merged = re.sub(r"/{2,}", "/", path)
    out: list[str] = []
    segments = merged.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
            continue
        if seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def match_path(as_sent: str, resource_path: str) -> str | None:
    """How a request path (as the client sent it) names the resource, or None.

    A web server decodes the path once and resolves dot segments and duplicate slashes, so
    `exact`, `decoded` and `normalised` name the file. `double_decoded` (e.g. %252D) and
    `case_folded` are recognised but name the file only on servers that decode twice or ignore
    case; stage_hits counts them only where the server served that spelling.
    """
    if as_sent == resource_path:
        return "exact"
    once = unquote(as_sent, errors="surrogateescape")
    if once == resource_path:
        return "decoded"
    norm_once = remove_dot_segments(once)
    if norm_once == resource_path:
        return "normalised"
    twice = unquote(once, errors="surrogateescape")
    norm_twice = remove_dot_segments(twice)
    if twice != once and norm_twice == resource_path:
        return "double_decoded"
    if norm_once.lower() == resource_path.lower():
        return "case_folded"
    if twice != once and norm_twice.lower() == resource_path.lower():
        return "double_decoded"
    return None


def _name_key(name: str) -> str:
    """A file name reduced to letters and digits, so detention_roster and Detention-Roster agree."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def relate_path(as_sent: str, resource_path: str) -> tuple[str | None, str | None]:
    """(match_how, relation) of one distinct path to one resource.

    relation: `resource` when match_path matches; else `similar_name` (same stem in any folder,
    other extension or separators, or a name that contains the resource's name); else
    `same_folder` (the folder itself or another file in it); else None.
    """
    how = match_path(as_sent, resource_path)
    if how is not None:
        return how, "resource"
    decoded = remove_dot_segments(unquote(as_sent, errors="surrogateescape")).lower()
    folder = posixpath.dirname(resource_path).lower()
    stem = posixpath.splitext(posixpath.basename(resource_path))[0]
    logged_name = posixpath.basename(decoded)
    logged_stem = posixpath.splitext(logged_name)[0]
    if logged_name and _name_key(stem) and _name_key(stem) in _name_key(logged_stem):
        return None, "similar_name"
    if decoded.rstrip("/") == folder or posixpath.dirname(decoded) == folder:
        return None, "same_folder"
    return None, None


def needle_pattern(resources: Sequence[Resource]) -> str:
    """Regular expression for the SQL pre-filter: any word of a resource's file name (3+ letters
    or digits) or its folder, lower-cased."""
    needles: set[str] = set()
    for r in resources:
        folder = posixpath.dirname(r.path).lower()
        if folder not in ("", "/"):
            needles.add(folder + "/")
        stem = posixpath.splitext(posixpath.basename(r.path))[0].lower()
        needles.update(w for w in re.split(r"[^0-9a-z]+", stem) if len(w) >= 3)
        if not needles:
            needles.add(posixpath.basename(r.path).lower())
    return "|".join(re.escape(n) for n in sorted(needles))


def candidate_paths_frame(
    distinct_paths: Iterable[tuple[str, str]], resources: Sequence[Resource]
) -> pl.DataFrame:
    """Classify each distinct (format, logged path) against each resource."""
    rows: list[dict[str, Any]] = []
    for fmt, logged in distinct_paths:
        as_sent = unquote(logged, errors="surrogateescape") if fmt in LOGGER_ENCODES_PATH else logged
        for r in resources:
            how, relation = relate_path(as_sent, _resource_path_only(r))
            if relation is not None:
                rows.append(
                    {"resource_path": r.path, "format": fmt, "path": logged,
                     "match_how": how, "relation": relation}
                )
    schema = {"resource_path": pl.String, "format": pl.String, "path": pl.String,
              "match_how": pl.String, "relation": pl.String}
    return pl.DataFrame(rows, schema=schema)


def _resource_path_only(resource: Resource) -> str:
    return resource.path.split("?", 1)[0] if resource.match_query else resource.path


def _resource_query(resource: Resource) -> str | None:
    """The query the case file asks for when match_query is set ('' when the path has none)."""
    if not resource.match_query:
        return None
    return resource.path.split("?", 1)[1] if "?" in resource.path else ""


# --- addresses -------------------------------------------------------------------------------


def normalise_address(text: str | None) -> str | None:
    """An address as logged -> canonical text, or None when it is not an IP address.

    Strips quotes, brackets, ports and IPv6 zones; IPv4-mapped IPv6 becomes IPv4; IPv6 is written
    compressed (RFC 5952 via Python's ipaddress).
    """
    if text is None:
        return None
    t = text.strip().strip('"').strip()
    if not t or t in ("-", "unknown"):
        return None
    if t.startswith("["):
        t = t[1:].split("]", 1)[0]
    elif t.count(":") == 1:
        t = t.split(":", 1)[0]  # a.b.c.d:port
    t = t.split("%", 1)[0]
    if CANONICAL_IPV4.fullmatch(t):
        return t  # what ipaddress would give back: four decimal octets, none with a leading zero
    try:
        ip = ipaddress.ip_address(t)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class TrustedProxies:
    """The case's [proxies] trusted networks, with membership cached per distinct address."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self.contains = functools.lru_cache(maxsize=None)(self._contains)

    def _contains(self, address: str) -> bool:
        if not self.networks:  # most cases name none: no address needs parsing to say so
            return False
        ip = ipaddress.ip_address(address)
        return any(ip.version == n.version and ip in n for n in self.networks)


@dataclass(frozen=True)
class ClientResolution:
    peer_ip: str | None
    client_ip: str | None
    client_basis: str
    claimed_forwarded_for: str | None
    client_flags: tuple[str, ...]


def split_forwarded_for(xff: str | None) -> list[str]:
    if not xff:
        return []
    return [e.strip() for e in xff.split(",") if e.strip() and e.strip() != "-"]


def resolve_client(
    role: str,
    client_addr: str | None,
    peer_addr: str | None,
    xff: str | None,
    trusted: TrustedProxies,
    has_cdn_logs: bool,
) -> ClientResolution:
    """Issue 3 rule 3: the real client of one logged request.

    - CDN (viewer-facing) log: the viewer (c-ip) is the client; its X-Forwarded-For is only what
      the viewer claimed (flag forwarded_for_claimed).
    - Origin log, peer in a trusted network: walk X-Forwarded-For from the right, skipping trusted
      entries; the first untrusted entry is the client, entries left of it were chosen by the
      client (claimed_forwarded_for) and are never the client. All trusted or empty: unknown.
    - Origin log, untrusted peer: the peer is the client (it went around the CDN when the case
      has CDN logs); any X-Forwarded-For it sent is a claim.
    """
    entries = split_forwarded_for(xff)
    flags: list[str] = []
    if role == "cdn":
        viewer = normalise_address(client_addr)
        if entries:
            flags.append("forwarded_for_claimed")
        if viewer is None:
            flags.append("client_address_unreadable")
        return ClientResolution(
            viewer, viewer, "viewer" if viewer else "unknown", ", ".join(entries) or None, tuple(flags)
        )
    peer = normalise_address(peer_addr or client_addr)
    if peer is not None and trusted.contains(peer):
        for i in range(len(entries) - 1, -1, -1):
            ip = normalise_address(entries[i])
            if ip is not None and trusted.contains(ip):
                continue
            claimed = ", ".join(entries[:i]) or None
            if claimed:
                flags.append("forwarded_for_claimed")
            if ip is None:
                # The first untrusted hop wrote something that is not an address: the client
                # cannot be named, and guessing further left would believe the client's own claim.
                flags.append("forwarded_for_unreadable")
                return ClientResolution(peer, None, "unknown", ", ".join(entries[: i + 1]), tuple(flags))
            return ClientResolution(peer, ip, "forwarded_for", claimed, tuple(flags))
        flags.append("client_unknown")
        return ClientResolution(peer, None, "unknown", None, tuple(flags))
    if entries:
        flags.append("forwarded_for_claimed")
    if has_cdn_logs:
        flags.append("went_around_cdn")
    if peer is None:
        flags.append("client_address_unreadable")
    return ClientResolution(peer, peer, "peer" if peer else "unknown", ", ".join(entries) or None, tuple(flags))


_CLIENT_MAP_SCHEMA: dict[str, pl.DataType] = {
    "role": pl.String(), "client_addr": pl.String(), "peer_addr": pl.String(), "xff": pl.String(),
    "peer_ip": pl.String(), "client_ip": pl.String(), "client_basis": pl.String(),
    "claimed_forwarded_for": pl.String(), "client_flags": pl.List(pl.String()),
}
_CANONICAL_IPV4_TEXT = f"^(?:{CANONICAL_IPV4.pattern})$"


def client_map_frame(
    rows: Sequence[tuple[str, str | None, str | None, str | None]], trusted: TrustedProxies, has_cdn_logs: bool
) -> pl.DataFrame:
    """`resolve_client` of each distinct (role, client_addr, peer_addr, xff), as the client_map
    table. The common row (no X-Forwarded-For, its address an IPv4 address written canonically,
    and, from an origin log, no trusted networks to walk) is resolved by polars for all rows at
    once; the others one by one. A million addresses took seconds of Python one by one."""
    given = pl.DataFrame(rows, schema=list(_CLIENT_MAP_SCHEMA.items())[:4], orient="row")
    cdn = pl.col("role") == "cdn"
    peer_given = pl.col("peer_addr").is_not_null() & (pl.col("peer_addr") != "")
    address = pl.when(cdn).then(pl.col("client_addr")).when(peer_given).then(pl.col("peer_addr")) \
        .otherwise(pl.col("client_addr"))
    plain = pl.col("xff").is_null() & address.str.contains(_CANONICAL_IPV4_TEXT).fill_null(False)
    if trusted.networks:
        plain = plain & cdn
    marked = given.with_columns(plain.alias("_plain"), address.alias("_address"))
    fast = marked.filter(pl.col("_plain")).select(
        "role", "client_addr", "peer_addr", "xff",
        pl.col("_address").alias("peer_ip"), pl.col("_address").alias("client_ip"),
        pl.when(cdn).then(pl.lit("viewer")).otherwise(pl.lit("peer")).alias("client_basis"),
        pl.lit(None, pl.String).alias("claimed_forwarded_for"),
        pl.when(cdn | (not has_cdn_logs)).then(pl.lit([], pl.List(pl.String)))
        .otherwise(pl.lit(["went_around_cdn"], pl.List(pl.String))).alias("client_flags"),
    )
    resolved = []
    for role, client_addr, peer_addr, xff in marked.filter(~pl.col("_plain")).select(
        "role", "client_addr", "peer_addr", "xff"
    ).iter_rows():
        res = resolve_client(role, client_addr, peer_addr, xff, trusted, has_cdn_logs)
        resolved.append(
            (role, client_addr, peer_addr, xff, res.peer_ip, res.client_ip, res.client_basis,
             res.claimed_forwarded_for, list(res.client_flags))
        )
    slow = pl.DataFrame(resolved, schema=list(_CLIENT_MAP_SCHEMA.items()), orient="row")
    return pl.concat([fast.cast(pl.Schema(_CLIENT_MAP_SCHEMA)), slow])


# --- running the stages ----------------------------------------------------------------------


def stage_query(name: str, **params: Any) -> tuple[str, dict[str, Any]]:
    """One named query's SQL and the parameters it uses, checked (every one it names is given)."""
    query, bound = named(name, **params)
    return query.sql, bound


def as_engine(target: duckdb.DuckDBPyConnection | Engine) -> Engine:
    """A connection to the case database runs the stages on DuckDB; an engine runs them itself."""
    return DuckDBEngine(target) if isinstance(target, duckdb.DuckDBPyConnection) else target


def run_stage(target: duckdb.DuckDBPyConnection | Engine, name: str, **params: Any) -> Any:
    """Run one named query with its parameters bound by the engine (never pasted into the SQL).

    A stage with `-- writes:` writes its table and gives None; another query gives its rows (on a
    DuckDB connection, the cursor, so its column names can be read)."""
    query, bound = named(name, **params)
    if query.writes is not None:
        as_engine(target).write(query, bound)
        return None
    if isinstance(target, duckdb.DuckDBPyConnection):
        return target.execute(query.sql, bound)
    return target.rows(query, bound)


def query_frame(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pl.DataFrame:
    """A named query's rows as a polars frame, through Arrow (no Python object per value), each
    column typed by the query's own type (a column empty in this case keeps it), times in UTC."""
    query, bound = named(name, **params)
    frame = pl.from_arrow(con.sql(query.sql, params=bound).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


def query_to_parquet(
    con: duckdb.DuckDBPyConnection, name: str, path: Path, columns: Sequence[str] | None = None, **params: Any
) -> Path:
    """A named query's rows (or the given columns of them, in that order) written to a Parquet file
    by DuckDB, in the query's order and typed by it, without passing through Python: a list of
    millions of rows is then read from the file a block at a time. `columns` are names from the
    code (the schema's lists), never input."""
    query, bound = named(name, **params)
    select = ", ".join(columns) if columns else "*"
    target = str(path).replace("'", "''")  # COPY takes no parameter for its file; the path is quoted
    con.execute(
        f"COPY (SELECT {select} FROM (\n{query.sql}\n) AS listed) TO '{target}' (FORMAT parquet, COMPRESSION zstd)",
        bound,
    )
    return path


def _rows(engine: Engine, name: str, **params: Any) -> list[tuple[Any, ...]]:
    result = run_stage(engine, name, **params)
    return list(result.fetchall() if isinstance(result, duckdb.DuckDBPyConnection) else result)


def decoded_queries_frame(queries: Iterable[str | None]) -> pl.DataFrame:
    """Each distinct logged query string percent-decoded once ('+' kept, malformed escapes kept, as
    a server that decodes the query for a file lookup does)."""
    rows = [{"query": q, "decoded": unquote(q, errors="replace")} for q in queries if q is not None]
    return pl.DataFrame(rows, schema={"query": pl.String, "decoded": pl.String})


@dataclass
class ResourceSize:
    size: int | None
    inferred: bool
    basis: str  # a key of SIZE_BASIS_TEXT
    responses: int = 0
    # every signal the logs gave, strongest first: (basis, size, responses)
    signals: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def estimated(self) -> bool:
        return self.basis == "total_minus_headers"

    @property
    def basis_text(self) -> str:
        return SIZE_BASIS_TEXT.get(self.basis, self.basis)


@dataclass
class Investigation:
    headline: dict[str, int]
    sizes: dict[str, ResourceSize]
    gaps: list[str]
    warnings: list[str] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)
    log_gaps: list[coverage.LogGap] = field(default_factory=list)


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def _fmt_utc(dt: datetime) -> str:
    return _utc(dt).strftime("%Y-%m-%d %H:%M UTC")


def investigate(target: duckdb.DuckDBPyConnection | Engine, case: Case) -> Investigation:
    """Run every stage over a case database written by ingest (or the same tables on another
    engine); rewrites the investigation tables."""
    if case.exposure is None or not case.resources:
        raise CaseFileError(
            "the case file has no [exposure] or no [[resources]]",
            hint="add [exposure] with start and end, and one [[resources]] with the leaked path",
            path=case.path,
        )
    exposure = case.exposure
    window = {
        "exposure_start": _utc(exposure.start),
        "exposure_end": _utc(exposure.end),
        "examine_from": _utc(exposure.examine_from),
        "examine_to": _utc(exposure.examine_to),
    }
    engine = as_engine(target)
    # The investigation tables are written afresh from the schema, so a case database from an
    # earlier version gains the columns this one writes.
    for table in INVESTIGATION_TABLES:
        engine.reset(table)
    roles = {r[0] for r in engine.sql_rows("SELECT DISTINCT role FROM sources WHERE lines_parsed > 0")}
    has_cdn_logs = "cdn" in roles
    warnings: list[str] = []

    # Stage 1: candidate paths (SQL substring filter, Python decoding over distinct paths), and
    # the distinct query strings of their requests when a resource is matched with its query.
    min_len = min(len(posixpath.basename(_resource_path_only(r))) for r in case.resources)
    distinct = _rows(
        engine, "stage_candidate_paths",
        needle_pattern=needle_pattern(case.resources), min_encoded_length=max(min_len, 1),
    )
    engine.register("candidate_paths", candidate_paths_frame(distinct, case.resources).to_arrow())
    queries: list[str | None] = []
    if any(r.match_query for r in case.resources):
        queries = [row[0] for row in _rows(engine, "stage_candidate_queries")]
    engine.register("decoded_queries", decoded_queries_frame(queries).to_arrow())

    # Stage 2: hits, then their requests rows, copied once for every later stage.
    for r in case.resources:
        run_stage(
            engine, "stage_hits", resource_path=r.path, any_host=not r.hosts,
            hosts=[host_without_port(h) for h in r.hosts], resource_query=_resource_query(r), **window,
        )
    run_stage(engine, "stage_hit_requests")

    # Stage 3: the real client, once per distinct (role, client, peer, xff).
    trusted = TrustedProxies(case.trusted_proxies)
    client_map = client_map_frame(_rows(engine, "stage_client_addresses"), trusted, has_cdn_logs)
    engine.register("client_map", client_map.to_arrow())
    run_stage(engine, "stage_resolve_clients")

    # Stage 4: one request, one count. Each pass links mutual best pairs; repeat until none.
    if has_cdn_logs:
        for stage, params in (
            ("stage_link_by_request_id", {}),
            ("stage_link_by_time", {"link_before_s": LINK_BEFORE_S, "link_after_s": LINK_AFTER_S}),
        ):
            linked = _linked(engine)
            while True:
                run_stage(engine, stage, **params)
                now = _linked(engine)
                if now == linked:
                    break
                linked = now

    # Stage 5: size, then what each client received. Every client that asked is listed: without a
    # size, failed and headers_only are still decided, and the rest are `undetermined`.
    sizes: dict[str, ResourceSize] = {}
    for r in case.resources:
        size = _resource_size(engine, r)
        sizes[r.path] = size
        if size.size is None:
            warnings.append(
                f"{r.path}: no size in the case file and no log line gives it; clients that received "
                "bytes are undetermined (add size = <bytes> to the [[resources]] table)"
            )
        elif size.inferred:
            warnings.append(
                f"resource size inferred from the logs: {size.size} bytes for {r.path} "
                f"({size.basis}: {size.basis_text}, {size.responses} responses); give size in the case "
                "file to confirm"
            )
        client_lists(engine, r.path)
        run_stage(
            engine, "stage_downloaders", resource_path=r.path, resource_size=size.size,
            size_inferred=size.inferred, size_estimated=size.estimated,
            undetermined_reason=(
                "the file's size is unknown (no size in the case file, and no log line gives it), so a "
                "complete copy cannot be told from part of one; add size = <bytes> to the case file"
            ),
            has_cdn_logs=has_cdn_logs,
        )
        run_stage(engine, "stage_near_misses", resource_path=r.path, **window)
    # The lists are in `downloaders` now: their working tables are emptied, not kept twice.
    engine.reset(CLIENT_VALUES)
    engine.reset(CLIENT_LISTS)

    # Stage 6: log coverage: the hourly table, then gaps at the logs' own resolution.
    run_stage(engine, "stage_log_coverage", examine_from=window["examine_from"], examine_to=window["examine_to"])
    run_stage(
        engine, "stage_request_timeline", examine_from=window["examine_from"], examine_to=window["examine_to"],
        bin_us=coverage.timeline_bin(window["examine_to"] - window["examine_from"]) // timedelta(microseconds=1),
    )
    gaps = coverage_gaps(engine, window["examine_from"], window["examine_to"])
    log_gaps = find_log_gaps(engine, window["examine_from"], window["examine_to"])
    if isinstance(engine, DuckDBEngine):
        # Another engine's caller stores them where it collects the results (forensics.engine.spark).
        coverage.store_gaps(engine.con, log_gaps)

    for name in ("candidate_paths", "decoded_queries", "client_map"):
        engine.unregister(name)
    counts = dict(engine.sql_rows("SELECT outcome, count(*) FROM downloaders GROUP BY outcome"))
    headline = {o: int(counts.get(o, 0)) for o in OUTCOMES}
    limits = evidence_limits(engine, case, sizes, log_gaps, window)
    return Investigation(
        headline=headline, sizes=sizes, gaps=gaps, warnings=warnings, limits=limits, log_gaps=log_gaps
    )


# The most bytes of values (about) whose lists one pass of stage_client_lists builds. The engine
# holds the lists being built in memory it cannot spill (DuckDB's list aggregate), within the
# run's buffer pool (forensics.db.WORKING_MEMORY_LIMIT): a million clients with ten long user
# agents each (1.2 GB of lists) made the stage run out of memory about one run in two.
LIST_PASS_BYTES = 192 << 20


def client_lists(engine: Engine, resource_path: str) -> int:
    """Build the resource's clients' lists of distinct values (`client_lists`), in as many passes
    over shares of the clients (in key order) as their size calls for (LIST_PASS_BYTES each);
    returns the passes."""
    run_stage(engine, "stage_client_values", resource_path=resource_path)
    clients, list_bytes = _rows(engine, "stage_client_value_size", resource_path=resource_path)[0]
    passes = max(1, -(-int(list_bytes) // LIST_PASS_BYTES))
    bounds: list[str | None] = []
    if passes > 1 and clients > 1:
        per_pass = -(-int(clients) // passes)
        bounds = [row[0] for row in _rows(
            engine, "stage_client_list_bounds", resource_path=resource_path, clients_per_pass=per_pass,
        )]
    edges = [None, *bounds, None]
    for from_key, to_key in itertools.pairwise(edges):
        run_stage(engine, "stage_client_lists", resource_path=resource_path, from_key=from_key, to_key=to_key)
    return len(edges) - 1


def _linked(engine: Engine) -> int:
    row = engine.sql_rows("SELECT count(*) FROM hits WHERE linked_by IS NOT NULL")
    return int(row[0][0]) if row else 0


def find_log_gaps(
    target: duckdb.DuckDBPyConnection | Engine, examine_from: datetime, examine_to: datetime
) -> list[coverage.LogGap]:
    """Every stretch of the examined period a log may be missing: at the edges, between delivery
    files, and silent runs of bins (see forensics.coverage)."""
    engine = as_engine(target)
    names = ["source_id", "path", "role", "format", "lines_parsed", "first_ts", "last_ts"]
    files = [
        dict(zip(names, row, strict=True))
        for row in engine.sql_rows(f"SELECT {', '.join(names)} FROM sources ORDER BY source_id")
    ]
    edges = _rows(engine, "stage_log_edges", examine_from=examine_from, examine_to=examine_to)
    silent = _rows(
        engine, "stage_silent_stretches", examine_from=examine_from, examine_to=examine_to,
        bin_minutes=coverage.BIN_MINUTES, neighbourhood_minutes=coverage.NEIGHBOURHOOD_MINUTES,
        min_expected=coverage.MIN_EXPECTED_LINES,
    )
    return [
        *coverage.edge_gaps(edges, examine_from, examine_to),
        *coverage.missing_delivery_files(files, examine_from, examine_to),
        *coverage.silent_stretch_gaps(silent, files),
    ]


def evidence_limits(
    engine: Engine,
    case: Case,
    sizes: dict[str, ResourceSize],
    log_gaps: Sequence[coverage.LogGap],
    window: dict[str, datetime],
) -> list[Limit]:
    """What the logs cannot show for this case, blocking first."""
    limits: list[Limit] = []
    covered = engine.sql_rows(
        "SELECT count(*) FROM requests WHERE ts BETWEEN $f AND $t",
        {"f": window["examine_from"], "t": window["examine_to"]},
    )
    if not covered or not covered[0][0]:
        limits.append(Limit(
            "no_log", BLOCKING,
            f"no log covers the window: no log line falls between {coverage.fmt_utc(window['examine_from'])} "
            f"and {coverage.fmt_utc(window['examine_to'])}, so this answer is empty because there is "
            "nothing to read, not because nobody asked",
            "add the logs of the exposure window to [[sources]], or check [exposure] start and end and their offsets",
        ))
    fix_gap = "add the missing log files to [[sources]]; until then clients in that stretch may be missing"
    for gap in log_gaps:
        limits.append(Limit(f"coverage_{gap.kind}", WARNING, gap.detail, fix_gap))
    # Empty hours the finer readings did not already explain (a quiet log's lost hour).
    for role, start, end in hourly_gap_runs(engine):
        if any(g.role == role and g.gap_start < end and g.gap_end > start for g in log_gaps):
            continue
        limits.append(Limit("coverage_hour", WARNING, _hourly_gap_text(role, start, end), fix_gap))
    for r in case.resources:
        size = sizes[r.path]
        if size.size is None:
            limits.append(Limit(
                "size_unknown", WARNING,
                f"the size of {r.path} is unknown: no size in the case file and no log line gives it, so "
                "clients that received bytes are undetermined (complete and partial cannot be told apart)",
                f"add size = <bytes> to the [[resources]] table for {r.path} (the file's size on disk)",
            ))
        elif size.estimated:
            limits.append(Limit(
                "size_estimated", WARNING,
                f"the size of {r.path} is an estimate: {size.size:,} bytes from {size.basis_text}; complete and "
                "partial are probable, not confirmed",
                f"add size = <bytes> to the [[resources]] table for {r.path}",
            ))
        elif size.inferred:
            limits.append(Limit(
                "size_inferred", WARNING,
                f"the size of {r.path} was inferred: {size.size:,} bytes from {size.basis_text} "
                f"({size.responses} responses)",
                f"confirm it with size = {size.size} in the [[resources]] table",
            ))
    limits.extend(_no_match_limits(engine, case, window))
    file_names = sorted({posixpath.basename(_resource_path_only(r)) for r in case.resources})
    for role, lines, naming, files in _rows(
        engine, "stage_rejects_in_window", examine_from=window["examine_from"], examine_to=window["examine_to"],
        file_name_pattern="|".join(re.escape(n.lower()) for n in file_names),
    ):
        named = f", {naming:,} of them naming {' or '.join(file_names)}" if naming else ""
        limits.append(Limit(
            "rejected_lines", WARNING,
            f"{lines:,} {role} log lines in {files} file{'s' if files != 1 else ''} covering the examined "
            f"period could not be read{named}: a request for the file may be among them",
            "see Rejected lines in the report's data quality section (`forensics query rejects_by_reason`)",
        ))
    limits.extend(trusted_network_limits(case.trusted_proxies))
    for r in case.resources:
        limits.extend(
            Limit("resource_path_decoded" if "percent-encoded" in note else "host_port_removed", NOTE, note)
            for note in r.reading_notes
        )
    return limits


def _no_match_limits(engine: Engine, case: Case, window: dict[str, datetime]) -> list[Limit]:
    """A resource no request in the examined period matched, with the near misses that did come."""
    out = []
    for r in case.resources:
        row = engine.sql_rows(
            "SELECT count(*) FROM hits WHERE resource_path = $p AND window_position IN ('exposure', 'margin')",
            {"p": r.path},
        )
        if row and row[0][0]:
            continue
        near = engine.sql_rows(
            "SELECT path, kind, sum(requests) AS n FROM near_misses WHERE resource_path = $p "
            "GROUP BY path, kind ORDER BY n DESC, path LIMIT 5",
            {"p": r.path},
        )
        near_text = (
            "; near misses: " + "; ".join(f"{p} ({k.replace('_', ' ')}, {n:,} requests)" for p, k, n in near)
            if near else "; no near miss either (no request for its folder or a similar name)"
        )
        hosts = f" on {', '.join(r.hosts)}" if r.hosts else ""
        out.append(Limit(
            "no_match", WARNING,
            f"no request in the examined period matched {r.path}{hosts}{near_text}",
            "check the resource's path (as published, decoded) and hosts in the case file",
        ))
    return out


def _resource_size(engine: Engine, resource: Resource) -> ResourceSize:
    """The size the outcome is judged against: the case file's, else the strongest signal of the
    logs (forensics/queries/stage_resource_size.sql), else unknown."""
    signals = [
        (str(basis), int(size), int(responses))
        for size, basis, responses, _headers in _rows(
            engine, "stage_resource_size", resource_path=resource.path, typical_header_bytes=TYPICAL_HEADER_BYTES
        )
    ]
    if resource.size is not None:
        return ResourceSize(resource.size, inferred=False, basis="case file", signals=signals)
    if not signals:
        return ResourceSize(None, inferred=True, basis="unknown")
    basis, size, responses = signals[0]
    return ResourceSize(size, inferred=True, basis=basis, responses=responses, signals=signals)


def hourly_gap_runs(target: duckdb.DuckDBPyConnection | Engine) -> list[tuple[str, datetime, datetime]]:
    """Runs of consecutive gap hours of the `coverage` table, per role: (role, start, end)."""
    runs: list[tuple[str, datetime, datetime]] = []
    for role, hour_start, _lines in _rows(as_engine(target), "coverage_gaps"):
        if runs and runs[-1][0] == role and runs[-1][2] == hour_start:
            runs[-1] = (role, runs[-1][1], hour_start + timedelta(hours=1))
        else:
            runs.append((role, hour_start, hour_start + timedelta(hours=1)))
    return runs


def _hourly_gap_text(role: str, start: datetime, end: datetime) -> str:
    hours = int((end - start).total_seconds() // 3600)
    return (
        f"no {role} log lines from {_fmt_utc(start)} to {_fmt_utc(end)} ({hours} hour"
        f"{'s' if hours != 1 else ''}), though {role} logs have lines before and after: "
        "a log file may be missing"
    )


def coverage_gaps(
    target: duckdb.DuckDBPyConnection | Engine, examine_from: datetime, examine_to: datetime
) -> list[str]:
    """Human-readable gaps: runs of empty hours inside a role's logs, and roles whose logs start
    after the examined period begins or end before it ends."""
    engine = as_engine(target)
    gaps = [_hourly_gap_text(role, start, end) for role, start, end in hourly_gap_runs(engine)]
    for role, first_ts, last_ts in engine.sql_rows(
        "SELECT role, min(first_ts), max(last_ts) FROM sources WHERE first_ts IS NOT NULL GROUP BY role"
        " ORDER BY role"
    ):
        if first_ts > examine_from:
            gaps.append(
                f"{role} logs start at {_fmt_utc(first_ts)}, after the examined period begins "
                f"({_fmt_utc(examine_from)})"
            )
        if last_ts < examine_to:
            gaps.append(
                f"{role} logs end at {_fmt_utc(last_ts)}, before the examined period ends "
                f"({_fmt_utc(examine_to)})"
            )
    return gaps
