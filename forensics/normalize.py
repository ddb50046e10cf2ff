"""Turn the raw text fields a reader extracted into the canonical `requests` columns.

Readers hand over a frame of strings whose column names are targets (a canonical column, a
`_`-prefixed intermediate such as `_ts` or `_request`, or any other name, which goes to `extra`)
and a map of target -> kind saying how to convert it. Conversion failures are reported per row so
the caller can reject the line with a reason instead of storing a wrong value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from urllib.parse import unquote

import polars as pl

from forensics.formats import FormatDef
from forensics.schema import REQUESTS

CANONICAL = set(REQUESTS.column_names)

_REQUEST_LINE = r"^(\S+) (\S+?)(?: +([A-Za-z]+/[0-9.]+))?$"
_ABSOLUTE = r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$"
_CONTENT_RANGE = r"^bytes (\d+)-(\d+)/(\d+|\*)$"
# A request line whose target holds spaces (AWS ALB logs them as received, classification
# SpaceInUri): the protocol is the last word.
_REQUEST_LINE_SPACED = r"^(\S+) (.+?) ([A-Za-z]+/[0-9.]+)$"
# Go-style durations (Traefik "2ms", Google Cloud "0.123s"): one number and one unit.
_DURATION = r"^([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)$"
_DURATION_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
# Address and port kinds: `addr_port` splits "[v6]:port" and "v4:port" and leaves a bare IPv6
# address alone; `addr_lastport` always splits on the last colon (AWS ALB writes IPv6 clients
# without brackets, and always with a port).
ADDR_PORT_KINDS = ("addr_port", "addr_lastport")
# Byte counts are never negative, and no single response is a petabyte: such a value is a
# damaged or forged line, rejected rather than read as a small or partial download.
BYTE_COLUMNS = ("body_bytes", "total_bytes", "range_start", "range_end", "object_size")
MAX_BYTES = 1 << 50
# An HTTP status has three digits (RFC 9110 section 15); 0 is CloudFront's 000 (the viewer
# closed the connection before a status was sent).
STATUS_RANGE = (100, 999)
# Times that Python and the report can represent; a year 0 or a negative year is a damaged line.
YEAR_RANGE = (1, 9999)


def _decode_unique(col: pl.Expr, how: str) -> pl.Expr:
    """Decode percent- or plus-encoded text, once per distinct value (agents repeat a lot)."""
    if how == "plus":
        return col.str.replace_all("+", " ", literal=True)
    if how == "percent":
        return col.map_batches(_percent_decode_series, return_dtype=pl.String)
    if how == "hex":
        return col.map_batches(_hex_decode_series, return_dtype=pl.String)
    raise ValueError(how)


_HEX_PRINTABLE = re.compile(r"\\x(2[0-9A-Fa-f]|[3-6][0-9A-Fa-f]|7[0-9A-Ea-e])")


def _hex_decode_series(s: pl.Series) -> pl.Series:
    """\\xHH escapes of printable ASCII (CloudFront writes the space in an X-Forwarded-For list as
    \\x20) become the character; other escapes stay as logged."""
    uniq = s.drop_nulls().unique()
    mapping = {
        v: _HEX_PRINTABLE.sub(lambda m: chr(int(m.group(1), 16)), v) for v in uniq.to_list() if "\\x" in v
    }
    if not mapping:
        return s
    return s.replace(mapping)


def _percent_decode_series(s: pl.Series) -> pl.Series:
    uniq = s.drop_nulls().unique()
    mapping = {v: unquote(v, errors="backslashreplace") for v in uniq.to_list() if "%" in v}
    if not mapping:
        return s
    return s.replace(mapping)


def _scatter(df: pl.DataFrame, idx: pl.Series, values: dict[str, pl.Series]) -> pl.DataFrame:
    cols = {}
    for name, vals in values.items():
        cols[name] = df.get_column(name).clone().scatter(idx, vals)
    return df.with_columns(**cols)


def _read_request_where(df: pl.DataFrame, mask: pl.Series, pattern: str) -> pl.DataFrame:
    """Method, target and protocol by regular expression, only for the rows in mask."""
    if not mask.any():
        return df
    idx = mask.arg_true()
    groups = df.get_column("_request").gather(idx).str.extract_groups(pattern)
    return _scatter(
        df,
        idx,
        {
            "_method": groups.struct.field("1"),
            "_target": groups.struct.field("2"),
            "_protocol": groups.struct.field("3"),
        },
    )


def _parse_request(df: pl.DataFrame, spaced: bool = False) -> pl.DataFrame:
    """Split the request line into method, target and protocol.

    Most lines are `METHOD TARGET PROTOCOL` with single spaces and are split directly; the
    others (HTTP/0.9 lines without a protocol, junk, binary bytes) go through the regular
    expression, row by row only where needed. A line that fits neither keeps a null method and
    is recorded in extra.request_line.
    """
    req = df.get_column("_request")
    parts = req.str.split_exact(" ", 2)
    method = parts.struct.field("field_0")
    target = parts.struct.field("field_1")
    protocol = parts.struct.field("field_2")
    simple = (
        (req.str.count_matches(" ", literal=True) == 2)
        & protocol.str.contains(r"^[A-Za-z]+/[0-9.]+$")
        & ~req.str.contains(r"[\t\r\n\v\f]")
        & (method.str.len_bytes() > 0)
        & (target.str.len_bytes() > 0)
    ).fill_null(False)
    df = df.with_columns(_method=method, _target=target, _protocol=protocol)
    df = _read_request_where(df, req.is_not_null() & ~simple, _REQUEST_LINE)
    if spaced:
        # Kind request_spaced: a second reading for targets with spaces, where the format says
        # the server logs them unescaped.
        still = df.select(pl.col("_request").is_not_null() & pl.col("_method").is_null()).to_series()
        df = _read_request_where(df, still, _REQUEST_LINE_SPACED)
    return df.with_columns(_bad_request=pl.col("_request").is_not_null() & pl.col("_method").is_null())


def _split_target(df: pl.DataFrame, col: str) -> pl.DataFrame:
    """Path and query from the request target; scheme and host too for absolute URLs
    (`_ABSOLUTE`: a scheme, "://", the host up to the first /, ? or #, then the rest)."""
    target = df.get_column(col)
    pq = target.str.splitn("?", 2)
    df = df.with_columns(
        _path=pq.struct.field("field_0"),
        _query=pq.struct.field("field_1"),
        _scheme=pl.lit(None, pl.String),
        _host=pl.lit(None, pl.String),
    )
    absolute = target.str.contains("://", literal=True).fill_null(False)
    if not absolute.any():
        return df
    # Split with string operations, which cost a fraction of the regular expression: a scheme
    # holds no colon, so the first "://" is the one after it. The expression's last group does
    # not read a line feed: a target holding one is read by the expression itself.
    newline = absolute & target.str.contains("\n", literal=True)
    parts = pl.col(col).str.splitn("://", 2)
    scheme, rest = parts.struct.field("field_0"), parts.struct.field("field_1")
    df = df.with_columns(
        _abs=(
            pl.lit(absolute) & ~pl.lit(newline) & scheme.str.contains(r"^[A-Za-z][A-Za-z0-9+.-]*$")
        ).fill_null(False),
        _rest=rest,
    )
    is_abs, rest = pl.col("_abs"), pl.col("_rest")
    host = rest.str.extract(r"^([^/?#]*)", 1)
    df = df.with_columns(_host=pl.when(is_abs).then(host))
    rq = rest.str.strip_prefix(pl.col("_host")).str.splitn("?", 2)
    df = df.with_columns(
        _scheme=pl.when(is_abs).then(scheme.str.to_lowercase()),
        _path=pl.when(is_abs).then(rq.struct.field("field_0")).otherwise(pl.col("_path")),
        _query=pl.when(is_abs).then(rq.struct.field("field_1")).otherwise(pl.col("_query")),
    ).drop("_abs", "_rest")
    if newline.any():
        idx = newline.arg_true()
        groups = target.gather(idx).str.extract_groups(_ABSOLUTE)
        is_abs_nl = groups.struct.field("1").is_not_null()
        rest_nl = groups.struct.field("3").str.splitn("?", 2)
        old_path = df.get_column("_path").gather(idx)
        old_query = df.get_column("_query").gather(idx)
        df = _scatter(
            df,
            idx,
            {
                "_scheme": groups.struct.field("1").str.to_lowercase(),
                "_host": groups.struct.field("2"),
                "_path": pl.select(
                    pl.when(is_abs_nl).then(rest_nl.struct.field("field_0")).otherwise(old_path)
                ).to_series(),
                "_query": pl.select(
                    pl.when(is_abs_nl).then(rest_nl.struct.field("field_1")).otherwise(old_query)
                ).to_series(),
            },
        )
    return df


def _ts_expr(raw: pl.Expr, kind: str, source_tz: str | None) -> pl.Expr:
    utc = pl.Datetime("us", "UTC")
    if kind == "ts_clf":
        return raw.str.strptime(utc, "%d/%b/%Y:%H:%M:%S %z", strict=False)
    if kind == "ts_iso":
        # A time ending in Z can be read only by the last form and any other only by the first
        # two (%z reads a sign and digits), so each form is given only the times it can read:
        # a form costs as much on a time it cannot read as on one it reads.
        zulu = raw.str.ends_with("Z")
        offset, z = pl.when(~zulu).then(raw), pl.when(zulu).then(raw)
        return pl.coalesce(
            offset.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%z", strict=False),
            offset.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%.f%z", strict=False),
            z.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%.fZ", strict=False),
        )
    if kind in ("ts_epoch_s", "ts_epoch_ms", "ts_epoch_us"):
        scale = {"ts_epoch_s": 1_000_000, "ts_epoch_ms": 1_000, "ts_epoch_us": 1}[kind]
        us = (raw.cast(pl.Float64, strict=False) * scale).round(0).cast(pl.Int64, strict=False)
        return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")
    if kind == "ts_epoch_ns":
        ns = raw.str.strip_chars().cast(pl.Int64, strict=False)
        return pl.from_epoch(ns // 1000, time_unit="us").dt.replace_time_zone("UTC")
    if kind == "ts_rfc3339":
        return _rfc3339(raw)
    if kind == "ts_auto":
        return _ts_auto(raw)
    if kind == "ts_auto_utc":
        # Writers whose clock is UTC by definition (Fastly's time variables) may leave the zone
        # out ("2024-01-02T03:04:05") or name it ("...GMT"): such a time is read as UTC.
        text = raw.str.strip_chars().str.replace(r"(?:GMT|UTC)$", "")
        naive = pl.coalesce(
            text.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.f", strict=False),
            text.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
        ).dt.replace_time_zone("UTC")
        return pl.coalesce(_ts_auto(raw), naive)
    if kind.startswith("ts_w3c"):
        naive = pl.coalesce(
            raw.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False),
            raw.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
        )
        zone = kind.partition(":")[2] or "UTC"
        return naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    if kind.startswith("strftime:"):
        fmt = kind.split(":", 1)[1]
        if "%z" in fmt:
            return raw.str.strptime(utc, fmt, strict=False)
        naive = raw.str.strptime(pl.Datetime("us"), fmt, strict=False)
        # Zone-less times take the source's zone; a time that falls in a DST gap is unreadable.
        return naive.dt.replace_time_zone(
            source_tz or "UTC", ambiguous="earliest", non_existent="null"
        ).dt.convert_time_zone("UTC")
    raise ValueError(f"unknown time kind {kind}")


def _rfc3339(raw: pl.Expr) -> pl.Expr:
    """RFC 3339 / ISO 8601 with any number of fractional digits (Azure writes 7, Go 9), 'Z' or
    an offset, 'T' or a space between date and time. Kept to microseconds."""
    utc = pl.Datetime("us", "UTC")
    text = raw.str.strip_chars().str.replace(r"[Zz]$", "+00:00").str.replace(
        r"^(\d{4}-\d{2}-\d{2}) ", "${1}T"
    )
    return pl.coalesce(
        text.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%.f%z", strict=False),
        text.str.strptime(utc, "%Y-%m-%dT%H:%M:%S%z", strict=False),
    )


def _ts_auto(raw: pl.Expr) -> pl.Expr:
    """A time written as a Unix epoch (seconds, milliseconds, microseconds or nanoseconds, told
    apart by the number of integer digits), as RFC 3339, or as a CLF time with offset. Cloudflare
    Logpush jobs choose among these per job, nginx JSON templates per site."""
    text = raw.str.strip_chars()
    numeric = text.str.contains(r"^[0-9]+(?:\.[0-9]*)?$")
    digits = text.str.extract(r"^([0-9]+)", 1).str.len_chars()
    whole = text.str.extract(r"^([0-9]+)", 1).cast(pl.Int64, strict=False)
    seconds = text.cast(pl.Float64, strict=False)
    us = (
        pl.when(digits <= 11).then((seconds * 1_000_000).round(0).cast(pl.Int64, strict=False))
        .when(digits <= 14).then((seconds * 1_000).round(0).cast(pl.Int64, strict=False))
        .when(digits <= 17).then(whole)
        .otherwise(whole // 1000)
    )
    epoch = pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")
    utc = pl.Datetime("us", "UTC")
    return pl.when(numeric).then(epoch).otherwise(
        pl.coalesce(_rfc3339(raw), text.str.strptime(utc, "%d/%b/%Y:%H:%M:%S %z", strict=False))
    )


def _split_addr_port(df: pl.DataFrame, kinds: dict[str, str]) -> tuple[pl.DataFrame, dict[str, str]]:
    """Columns of kind addr_port / addr_lastport become an address and a port column
    (client_addr -> client_port, x_addr -> x_port, x -> x_port)."""
    kinds = dict(kinds)
    for col, kind in list(kinds.items()):
        if kind not in ADDR_PORT_KINDS or col not in df.columns:
            continue
        df = df.with_columns(pl.col(col).str.strip_chars(' "'))
        text = pl.col(col)
        addrs: list[pl.Expr] = []
        ports: list[pl.Expr] = []
        # Without a "[" in the chunk's column the bracketed form reads nothing, and where the
        # one-colon form reads a value the last-colon form reads the same: only the forms that
        # can read something are run (each is a regex over every row).
        bracketed = bool(df.get_column(col).str.contains("[", literal=True).any())
        forms = [r"^\[([^\]]+)\](?::([0-9]+))?$"] if bracketed else []
        if kind == "addr_port" or bracketed:
            forms.append(r"^([^:\[\]]+):([0-9]+)$")
        for form in forms:
            groups = text.str.extract_groups(form)
            addrs.append(groups.struct.field("1"))
            ports.append(groups.struct.field("2"))
        if kind == "addr_lastport":
            # The last colon followed by digits. With one colon (IPv4, names: most lines) it is
            # the first, found without a regular expression; the others are read by the
            # expressions (the one-colon form first: unlike the last-colon form, it reads a
            # line feed in the address).
            parts = text.str.splitn(":", 2)
            host, digits = parts.struct.field("field_0"), parts.struct.field("field_1")
            df = df.with_columns(
                _one_colon=(
                    (host.str.len_bytes() > 0)
                    & digits.str.contains(r"^[0-9]+$")
                    & ~host.str.contains("\n", literal=True)
                ).fill_null(False)
            )
            one_colon = pl.col("_one_colon")
            others = pl.when(~one_colon).then(text)
            found = [others.str.extract_groups(f) for f in (r"^([^:\[\]]+):([0-9]+)$", r"^(.+):([0-9]+)$")]
            addrs.append(pl.when(one_colon).then(host).otherwise(pl.coalesce(g.struct.field("1") for g in found)))
            ports.append(pl.when(one_colon).then(digits).otherwise(pl.coalesce(g.struct.field("2") for g in found)))
        port_col = col[: -len("_addr")] + "_port" if col.endswith("_addr") else f"{col}_port"
        port = pl.coalesce(ports)
        if port_col in df.columns:
            port = pl.coalesce(pl.col(port_col), port)
        df = df.with_columns(pl.coalesce([*addrs, text]).alias(col), port.alias(port_col))
        kinds[col] = "addr"
        kinds.setdefault(port_col, "int")
    return df, kinds


def _out_of_range(df: pl.DataFrame) -> pl.DataFrame:
    """Reasons for values no real line has: a year outside 1-9999, a negative or petabyte byte
    count, a status outside 100-999 (0 is CloudFront's 000). The bounds of each column are looked
    at first, so the per-row test runs only on a chunk that holds such a value."""
    checks: list[tuple[pl.Expr, str]] = []

    def outside(col: str, lo: int, hi: int) -> bool:
        values = df.get_column(col)
        if col == "ts":
            values = values.dt.year()
        low, high = values.min(), values.max()
        return bool(low is not None and (low < lo or high > hi))  # type: ignore[operator]

    if "ts" in df.columns and df.schema["ts"] == pl.Datetime("us", "UTC") and outside("ts", *YEAR_RANGE):
        why = "timestamp out of range (year before 1 or after 9999)"
        checks.append((~pl.col("ts").dt.year().is_between(*YEAR_RANGE), why))
    if "status" in df.columns and df.schema["status"].is_integer() and outside("status", *STATUS_RANGE):
        c = pl.col("status")
        checks.append(((c != 0) & ~c.is_between(*STATUS_RANGE), "status is not an HTTP status (100-999, or 000)"))
    for col in BYTE_COLUMNS:
        if col in df.columns and df.schema[col].is_integer() and outside(col, 0, MAX_BYTES):
            checks.append((pl.col(col) < 0, f"{col} is negative"))
            checks.append((pl.col(col) > MAX_BYTES, f"{col} is larger than a petabyte"))
    if not checks:
        return df
    reason = pl.col("_reason")
    for cond, text in reversed(checks):
        reason = pl.when(pl.col("_reason").is_null() & cond.fill_null(False)).then(pl.lit(text)).otherwise(reason)
    return df.with_columns(_reason=reason)


# What JSON escapes inside a string (polars' encoder writes every other character as it is).
_JSON_ESCAPED = r'[\x00-\x1f"\\]'
# The same but the double quote: a value free of these needs only its quotes escaped (as \").
_JSON_ESCAPED_BUT_QUOTE = r"[\x00-\x1f\\]"


@functools.lru_cache(maxsize=1024)
def _json_key(name: str) -> str:
    """`"name":` as polars' JSON encoder writes the key."""
    encoded = pl.select(pl.struct(pl.lit("", pl.String).alias(name)).struct.json_encode()).item()
    return str(encoded)[1 : -len('""}')]


def extra_expr(
    df: pl.DataFrame, columns: list[str], vouch: Callable[[], frozenset[str] | None] | None = None
) -> pl.Expr:
    """The `extra` JSON object of each row: the non-null values of `columns`, as text, in that
    order ({"ident":"x"} rather than a wall of nulls); null when all are null.

    A column null in every row of the frame is left out. Values are written by concatenation
    (a tenth of the cost of the JSON encoder), with the key as the encoder writes it: as they
    are when none needs escaping, with their quotes escaped when a quote is all that needs it;
    the encoder writes the other columns. The members of columns without nulls are pieces of
    one concatenation (each nested one is a column built and copied again).
    `vouch`: asked once, when a column is to be written, it may name the only columns that can
    hold a character JSON escapes in the rows the caller keeps: the others are not searched.
    """
    pieces: list[pl.Expr] = []  # every member but the first starts with ","
    present: list[str] = []
    lead = ""  # literal text waiting to start the next piece
    first_nullable = False
    plain_except: frozenset[str] | None = None
    for c in columns:
        values = df.get_column(c)
        nulls = values.null_count()
        if nulls == df.height:
            continue
        if not present:
            first_nullable = nulls > 0
            plain_except = vouch() if vouch is not None else None
        comma = "," if present or first_nullable else ""
        present.append(c)
        text: pl.Expr | None = pl.col(c).cast(pl.String)
        if plain_except is None or c in plain_except:
            strings = values.cast(pl.String).str
            if not strings.contains(_JSON_ESCAPED).any():
                pass
            elif not strings.contains(_JSON_ESCAPED_BUT_QUOTE).any():
                text = pl.col(c).cast(pl.String).str.replace_all('"', '\\"', literal=True)
            else:
                text = None
        if text is None:
            member = pl.struct(pl.col(c).cast(pl.String)).struct.json_encode().str.slice(1).str.head(-1)
            member = pl.when(pl.col(c).is_not_null()).then(pl.concat_str(pl.lit(comma), member))
        elif nulls == 0:
            pieces += [pl.lit(lead + comma + _json_key(c) + '"'), text]
            lead = '"'
            continue
        else:
            member = pl.concat_str(pl.lit(comma + _json_key(c) + '"'), text, pl.lit('"'))
        if lead:
            pieces.append(pl.lit(lead))
            lead = ""
        pieces.append(member)
    if not present:
        return pl.lit(None, pl.String)
    if first_nullable:
        # The first member may be missing: every member then starts with a comma, cut here.
        body = pl.concat_str([*pieces, pl.lit(lead)], ignore_nulls=True).str.slice(1)
        obj = pl.concat_str([pl.lit("{"), body, pl.lit("}")])
    else:
        obj = pl.concat_str([pl.lit("{"), *pieces, pl.lit(lead + "}")], ignore_nulls=True)
    if all(df.get_column(c).null_count() == 0 for c in present):
        return obj
    return pl.when(pl.any_horizontal(pl.col(c).is_not_null() for c in present)).then(obj)


def nulls_to_null(df: pl.DataFrame, columns: list[str], tokens: list[str]) -> pl.DataFrame:
    """The format's null tokens ("-") become null in `columns`: one expression over them all
    (one per column cost a tenth of a millisecond each, a chunk of a few lines as much as one
    of thousands)."""
    return df.with_columns(pl.col(columns).replace(list(dict.fromkeys(tokens)), None))


def to_canonical(
    raw: pl.DataFrame,
    kinds: dict[str, str],
    fmt: FormatDef,
    source_id: int,
    source_tz: str | None,
    w3c_zone: str | None = None,
    vouch: Callable[[], frozenset[str] | None] | None = None,
) -> tuple[pl.DataFrame, pl.Series]:
    """Convert a raw frame (with `_line_no`) to canonical columns.

    Returns the canonical frame and, per row, a failure reason or null. `vouch`: see
    extra_expr (what a reader can vouch for about the rows it keeps).
    """
    df = raw
    nulls = list(fmt.null)
    str_cols = [c for c, t in df.schema.items() if t == pl.String and c != "_line"]
    # '-' in a CLF byte count means zero bytes, not unknown.
    zero_cols = [c for c in str_cols if kinds.get(c) == "bytes_clf"]
    if zero_cols:
        df = df.with_columns(pl.col(c).replace("-", "0") for c in zero_cols)
    if nulls and str_cols:
        df = nulls_to_null(df, str_cols, nulls)
    if any(k in ADDR_PORT_KINDS for k in kinds.values()):
        df, kinds = _split_addr_port(df, kinds)
    if "_date" in df.columns and "_time" in df.columns:
        df = df.with_columns(_ts=pl.concat_str("_date", "_time", separator=" "))
        kinds = {**kinds, "_ts": f"ts_w3c:{w3c_zone}" if w3c_zone else "ts_w3c"}

    exprs: dict[str, pl.Expr] = {}
    checks: list[tuple[pl.Expr, str]] = []

    # Addresses: strip quotes and brackets; a list means proxies: last = peer, rest = xff.
    if "client_addr" in df.columns:
        addr = pl.col("client_addr").str.strip_chars(' "')
        xff_now = pl.col("xff") if "xff" in df.columns else pl.lit(None, pl.String)
        if df.select(pl.col("client_addr").str.contains(",", literal=True).any()).item():
            is_list = addr.str.contains(",", literal=True)
            last = addr.str.split(",").list.last().str.strip_chars(" ")
            rest = addr.str.replace(r"\s*,\s*[^,]*$", "")
            exprs["client_addr"] = pl.when(is_list).then(last).otherwise(addr)
            exprs["xff"] = pl.when(is_list & xff_now.is_null()).then(rest).otherwise(xff_now)
        else:
            # No list in the chunk (most chunks): the list expressions would read every value
            # for nothing.
            exprs["client_addr"] = addr
            exprs["xff"] = xff_now
    if "xff" in df.columns and "xff" not in exprs:
        exprs["xff"] = pl.col("xff").str.strip_chars(' "')

    # Time.
    if "_ts" in df.columns:
        # Read once: the checks below use it too.
        df = df.with_columns(_ts_read=_ts_expr(pl.col("_ts"), kinds["_ts"], source_tz))
        ts = pl.col("_ts_read")
        exprs["ts"] = ts
        checks.append((pl.col("_ts").is_null(), "no timestamp"))
        checks.append((pl.col("_ts").is_not_null() & ts.is_null(), "timestamp not readable"))
    else:
        checks.append((pl.lit(True), "no timestamp"))

    # Request line (or $request_uri): method, target, protocol; then scheme, host, path, query.
    # A value the record names itself (a JSON member "method", IIS's cs-host) wins over the one
    # read from its request line or URL, row by row: a record without the member keeps the
    # derived value even when other records in the chunk have it, so a line reads the same
    # whatever its neighbours.
    derived: list[str] = []
    target_col = None
    if "_request" in df.columns:
        df = _parse_request(df, spaced=kinds.get("_request") == "request_spaced")
        derived += ["method", "protocol"]
        target_col = "_target"
    elif "_request_uri" in df.columns:
        target_col = "_request_uri"
    elif "_url" in df.columns:
        # Kind full_url: scheme://host[:port]/path?query (Google Cloud, Azure Front Door).
        target_col = "_url"
    if target_col is not None:
        df = _split_target(df, target_col)
        derived += ["scheme", "host", "path", "query"]

    # Typed values.
    for col, kind in kinds.items():
        if col not in df.columns or col.startswith("_") or col in exprs:
            continue
        c = pl.col(col)
        if kind == "int" or kind in ("bytes", "bytes_clf"):
            typed = c.str.strip_chars().cast(pl.Int64, strict=False)
            checks.append((c.is_not_null() & typed.is_null(), f"{col} is not a number"))
            exprs[col] = typed
        elif kind in ("us", "ms", "s"):
            factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[kind]
            typed = c.cast(pl.Float64, strict=False)
            exprs[col] = typed * factor
        elif kind == "ns":
            exprs[col] = c.cast(pl.Float64, strict=False) / 1e6
        elif kind == "duration":
            parts = c.str.strip_chars().str.extract_groups(_DURATION)
            unit = parts.struct.field("2").replace_strict(_DURATION_MS, default=None, return_dtype=pl.Float64)
            exprs[col] = parts.struct.field("1").cast(pl.Float64, strict=False) * unit
        elif kind == "query":
            exprs[col] = c.str.strip_prefix("?")
        elif kind == "addr":
            exprs[col] = c.str.strip_chars(' "')
    if "_content_range" in df.columns:
        cr = pl.col("_content_range").str.extract_groups(_CONTENT_RANGE)
        exprs["range_start"] = cr.struct.field("1").cast(pl.Int64, strict=False)
        exprs["range_end"] = cr.struct.field("2").cast(pl.Int64, strict=False)
        exprs["object_size"] = cr.struct.field("3").cast(pl.Int64, strict=False)

    for col, how in fmt.decode.items():
        if col in df.columns:
            exprs[col] = _decode_unique(pl.col(col), how)

    for name in derived:
        exprs[name] = (
            pl.coalesce(exprs.get(name, pl.col(name)), pl.col(f"_{name}")) if name in df.columns else pl.col(f"_{name}")
        )

    if "cache_status_raw" in df.columns and fmt.cache:
        # A status the format's table does not name is "other"; a row without one stays
        # without one. (Mapped to "other" too, a JSON record lacking the member would read one
        # way in a chunk where no record has it, whose column is then absent, and another
        # beside records that have it.)
        status = pl.col("cache_status_raw")
        exprs["cache_status"] = pl.when(status.is_not_null()).then(
            status.str.to_lowercase().replace_strict(fmt.cache, default="other", return_dtype=pl.String)
        )
    elif "cache_status_raw" in df.columns:
        exprs["cache_status"] = pl.col("cache_status_raw").str.to_lowercase()

    # Kind reject: the layout variant recognises lines of another log written to the same place
    # (AWS NLB TLS or ALB connection logs beside ALB access logs); they are rejected, saying so.
    for col, kind in kinds.items():
        if kind == "reject":
            why = fmt.reject_reasons.get(col, f"a {col} line, not a request")
            checks.insert(0, (pl.lit(True), why))
    reason = pl.lit(None, pl.String)
    for cond, text in reversed(checks):
        reason = pl.when(cond).then(pl.lit(text)).otherwise(reason)
    exprs["_reason"] = reason
    df = _out_of_range(df.with_columns(**exprs))

    extra_cols = [
        c for c in df.columns if not c.startswith("_") and c not in CANONICAL
    ]
    if "_bad_request" in df.columns:
        df = df.with_columns(
            request_line=pl.when(pl.col("_bad_request")).then(pl.col("_request"))
        )
        extra_cols.append("request_line")
    extra_json = extra_expr(df, extra_cols, vouch)

    out_cols: list[pl.Expr] = []
    for column in REQUESTS.columns:
        if column.name == "source_id":
            out_cols.append(pl.lit(source_id, pl.Int32).alias("source_id"))
        elif column.name == "line_no":
            out_cols.append(pl.col("_line_no").cast(pl.Int64).alias("line_no"))
        elif column.name == "extra":
            out_cols.append(extra_json.alias("extra"))
        elif column.name in df.columns:
            out_cols.append(pl.col(column.name).cast(column.polars_type, strict=False).alias(column.name))
        else:
            out_cols.append(pl.lit(None, column.polars_type).alias(column.name))
    if "peer_addr" not in df.columns and kinds.get("client_addr") == "addr" and fmt.family == "text":
        # %h / $remote_addr is the TCP peer unless a real-IP module rewrote it.
        out_cols[REQUESTS.column_names.index("peer_addr")] = pl.col("client_addr").alias("peer_addr")
    result = df.select([*out_cols, pl.col("_reason")])
    return result.drop("_reason"), result.get_column("_reason")
