"""A list (the downloaders, the requests to network operators) as CSV and as JSON text.

CSV: one row per list row, the cells spreadsheet-safe (`cell_text`: lists joined with ' | ',
times as ISO 8601 UTC, true/false, a leading = + - @ tab or carriage return quoted away), written
as Python's `csv.writer` writes them (quotes only where a cell holds a comma, a quote or a line
break; lines end with CRLF). JSON: an array of objects, times as ISO 8601 UTC, the text
`json.dumps(records, indent=2, ensure_ascii=False)` gives.

Both are generated a block of rows at a time, column by column with polars string expressions, so
a million rows take seconds instead of a Python call per cell; the rare values a column rule does
not cover (control characters in JSON text, years before 1000, floating-point numbers, types
without a rule) take the per-value path, whose text is the definition. Tests hold the two equal.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_PATTERN = "^[=+\\-@\\t\\r]"
LIST_SEPARATOR = " | "
# Rows generated and written at a time: JSON records (a downloader's lists take lines each), and
# CSV lines, whose per-block cost (a polars call per column) made blocks of 20,000 rows half
# again slower than 50,000 for the 10,500,000 requests of an operator export.
BLOCK_ROWS = 20_000
CSV_BLOCK_ROWS = 50_000
# Blocks generated at once, on threads (polars works outside the GIL), while the one before them is
# written: with two cores, generating was one and the other waited.
BLOCKS_AHEAD = 2
# A text column's (or a list column's items') output is made per distinct value when the distinct
# values are at most this share of the values; else per value (finding the distinct values would
# cost more than it saves).
DISTINCT_SHARE = 0.5

_Item = TypeVar("_Item")
_Made = TypeVar("_Made")


def iso_utc(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, seconds unless the log has fractions."""
    if ts is None:
        return None
    text = ts.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def neutralise_formula(value: str) -> str:
    """Prefix a single quote to text a spreadsheet would run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def cell_text(value: Any) -> str:
    """A value as spreadsheet-safe text: lists joined with ' | ', times in UTC, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, list):
        return neutralise_formula(LIST_SEPARATOR.join("" if v is None else str(v) for v in value))
    if isinstance(value, datetime):
        return iso_utc(value) or ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise_formula(str(value))


def json_value(value: Any) -> str:
    """One field's JSON text inside a record of `write_json_records` (nested lists indented)."""
    if isinstance(value, datetime):
        value = iso_utc(value)
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n    ")


# --- column rules --------------------------------------------------------------------------------


def _list_rule(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.List) and (dtype.inner in (pl.String, pl.Null) or dtype.inner.is_integer())


def _iso_texts(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """iso_utc of each time, and which rows the per-value path must take (years outside 1000-9999,
    where Python pads differently)."""
    utc = values.dt.convert_time_zone("UTC")
    text = pl.select(
        pl.when(pl.lit(utc).dt.microsecond() == 0)
        .then(pl.lit(utc).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        .otherwise(pl.lit(utc).dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    ).to_series()
    year = utc.dt.year()
    return text, ((year < 1000) | (year > 9999)).fill_null(False)


def _by_value(values: pl.Series, rows: pl.Series, text_of: Callable[[Any], str], text: pl.Series) -> pl.Series:
    """`text` with the rows marked in `rows` replaced by text_of(value)."""
    index = rows.arg_true()
    if index.len() == 0:
        return text
    return text.scatter(index, pl.Series([text_of(values[i]) for i in index.to_list()], dtype=pl.String))


def _per_distinct(values: pl.Series, text_of: Callable[[Any], str]) -> pl.Series:
    """text_of applied once per distinct value (numbers whose text Python defines)."""
    distinct = values.drop_nulls().unique()
    texts = pl.Series([text_of(v) for v in distinct.to_list()], dtype=pl.String)
    out = values.replace_strict(distinct, texts, default=None, return_dtype=pl.String)
    # NaN is not equal to itself, so it is looked up apart.
    if values.dtype.is_float() and bool(values.is_nan().any()):
        out = _by_value(values, values.is_nan().fill_null(False), text_of, out)
    return out


def _is_fast_time(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.Datetime) and dtype.time_zone is not None and dtype.time_unit == "us"


def csv_cells(values: pl.Series) -> pl.Series:
    """cell_text of every value (nulls as empty text)."""
    dtype = values.dtype
    if dtype == pl.Null:
        return pl.repeat("", values.len(), dtype=pl.String, eager=True)
    if dtype == pl.Boolean:
        text = pl.select(
            pl.when(pl.lit(values).is_null()).then(pl.lit(""))
            .when(pl.lit(values)).then(pl.lit("true")).otherwise(pl.lit("false"))
        ).to_series()
    elif _is_fast_time(dtype):
        text, rare = _iso_texts(values)
        text = _by_value(values, rare, cell_text, text)
    elif dtype.is_float():
        text = _per_distinct(values, cell_text)
    elif dtype == pl.String or dtype.is_integer() or _list_rule(dtype):
        if dtype == pl.String:
            plain = values
        elif dtype.is_integer():
            plain = values.cast(pl.String)
        else:
            plain = values.cast(pl.List(pl.String)).list.eval(pl.element().fill_null("")).list.join(LIST_SEPARATOR)
        text = pl.select(
            pl.when(pl.lit(plain).str.contains(_FORMULA_PATTERN))
            .then(pl.concat_str([pl.lit("'"), pl.lit(plain)]))
            .otherwise(pl.lit(plain))
        ).to_series()
    else:
        return pl.Series([cell_text(v) for v in values.to_list()], dtype=pl.String)
    return text.fill_null("")


def json_fields(values: pl.Series) -> pl.Series:
    """json_value of every value."""
    dtype = values.dtype
    if dtype == pl.Null:
        return pl.repeat("null", values.len(), dtype=pl.String, eager=True)
    if dtype == pl.Boolean:
        text = pl.select(pl.when(pl.lit(values)).then(pl.lit("true")).otherwise(pl.lit("false"))).to_series()
    elif dtype.is_integer():
        text = values.cast(pl.String)
    elif dtype.is_float():
        text = _per_distinct(values, json_value)
    elif _is_fast_time(dtype):
        iso, rare = _iso_texts(values)
        quoted = pl.select(pl.concat_str([pl.lit('"'), pl.lit(iso), pl.lit('"')])).to_series()
        text = _by_value(values, rare, json_value, quoted)
    elif dtype == pl.String:
        text = pl.select(_json_strings(pl.lit(values))).to_series()
        text = _by_value(values, values.str.contains(_JSON_RARE).fill_null(False), json_value, text)
    elif _list_rule(dtype):
        items = values.cast(pl.List(pl.String))
        texts = isinstance(dtype, pl.List) and dtype.inner == pl.String
        rare = pl.repeat(False, values.len(), dtype=pl.Boolean, eager=True)
        distinct = items.explode().drop_nulls().unique() if texts else pl.Series([], dtype=pl.String)
        if texts and distinct.len() <= DISTINCT_SHARE * int(items.list.len().sum() or 0):
            # Most items repeat (a dozen user agents shared by a million clients): each distinct
            # item is encoded once, as json.dumps encodes it inside the list, and the items take theirs.
            item = pl.element().replace_strict(distinct, _json_items(distinct), default=None)
        elif texts:
            item = _json_strings(pl.element())
            rare = items.list.eval(pl.element().str.contains(_JSON_RARE)).list.any().fill_null(False)
        else:
            item = pl.element()
        encoded = items.list.eval(pl.when(pl.element().is_null()).then(pl.lit("null")).otherwise(item))
        text = pl.select(
            pl.when(pl.lit(encoded).list.len() == 0).then(pl.lit("[]")).otherwise(pl.concat_str([
                pl.lit("[\n      "), pl.lit(encoded).list.join(",\n      "), pl.lit("\n    ]"),
            ]))
        ).to_series()
        text = _by_value(values, rare, lambda v: json_value(list(v)), text)
    else:
        return pl.Series([json_value(v) for v in values.to_list()], dtype=pl.String)
    return pl.select(pl.when(pl.lit(values).is_null()).then(pl.lit("null")).otherwise(pl.lit(text))).to_series()


# Characters json.dumps writes as \u00XX (the short escapes \n \r \t \\ \" are done in polars).
_JSON_RARE = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"


def _json_items(text: pl.Series) -> pl.Series:
    """Each text (none missing) as json.dumps writes it in a list (rare ones by json.dumps itself)."""
    encoded = pl.select(_json_strings(pl.lit(text))).to_series()
    rare = text.str.contains(_JSON_RARE)
    if rare.any():
        positions = rare.arg_true()
        rare_texts = text.gather(positions).to_list()
        encoded = encoded.scatter(positions, [json.dumps(t, ensure_ascii=False) for t in rare_texts])
    return encoded


def _json_strings(text: pl.Expr) -> pl.Expr:
    # One pass replacing each of the five at once (each character of the text is replaced once,
    # so a backslash written for a quote is not doubled again).
    escaped = text.str.replace_many(["\\", '"', "\n", "\r", "\t"], ["\\\\", '\\"', "\\n", "\\r", "\\t"])
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


# --- files ---------------------------------------------------------------------------------------


def _csv_field(text: pl.Expr) -> pl.Expr:
    """A cell as csv.writer writes it: quoted, with quotes doubled, when it holds , " CR or LF."""
    return pl.when(text.str.contains('[,"\r\n]')).then(
        pl.concat_str([pl.lit('"'), text.str.replace_all('"', '""', literal=True), pl.lit('"')])
    ).otherwise(text)


def joined_utf8(text: pl.Expr, separator: str = "") -> memoryview:
    """The values joined into one text, as UTF-8 bytes in the buffer Arrow holds them in: a block
    of a list is tens of megabytes, which Python bytes would copy once more (a third of the time of
    generating a workbook's rows went to that copy)."""
    series = pl.select(text.str.join(separator)).to_series()
    joined = series.to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    # One value, not missing (join skips missing values): its bytes run from its first offset to
    # the next one, each a 64-bit integer in the offsets buffer (large_string). Any other layout
    # (another polars or pyarrow) is copied out as bytes instead.
    buffers = joined.buffers()
    if joined.type != pa.large_string() or len(joined) != 1 or joined.null_count or buffers[1] is None:
        return memoryview(series.cast(pl.Binary).item())
    first, end = struct.unpack_from("<2q", buffers[1], 8 * joined.offset)
    if buffers[2] is None:  # an empty text may have no data buffer
        return memoryview(b"")
    return memoryview(buffers[2].slice(first, end - first))


def _csv_lines(columns: list[pl.Series]) -> bytes | memoryview:
    if len(columns) == 1:
        # csv.writer writes a row of one empty field as "" (an empty line would be no row).
        line = pl.when(pl.lit(columns[0]) == "").then(pl.lit('""')).otherwise(_csv_field(pl.lit(columns[0])))
        return joined_utf8(pl.concat_str([line, pl.lit("\r\n")]))
    # Polars' own CSV writer, quoting where necessary (a comma, a quote, CR or LF: csv.writer's
    # rule), with empty cells as missing values, which it leaves unquoted as csv.writer does:
    # a third of the CPU of building each line with string expressions.
    cells = pl.DataFrame({f"c{i}": c for i, c in enumerate(columns)}).select(
        pl.when(pl.all() != "").then(pl.all())
    )
    out = io.BytesIO()
    cells.write_csv(out, include_header=False, line_terminator="\r\n", quote_style="necessary")
    return out.getbuffer()  # the written bytes themselves, not a copy


@contextmanager
def replaced_whole(path: Path) -> Iterator[Path]:
    """A file beside `path` to write, which replaces `path` once written: an interrupted or failed
    write leaves the previous file or the new one, never part of one."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def made_in_order(make: Callable[[_Item], _Made], items: Iterable[_Item], ahead: int = BLOCKS_AHEAD) -> Iterator[_Made]:
    """make(item) for each item, in the items' order, on `ahead` threads: the next item is started
    before the one before it is handed over, so one is made while the caller writes and `ahead`
    are made while it waits. At most `ahead` results are held, the one being written included."""
    with ThreadPoolExecutor(max_workers=ahead) as pool:
        pending: deque[Future[_Made]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(make, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # the caller stopped early (an error): drop what is queued
                future.cancel()


def _blocks(frame: pl.DataFrame | pl.LazyFrame, rows_at_once: int) -> tuple[list[str], list[pl.LazyFrame]]:
    """The list's column names and its rows a block at a time, as lazy slices (a lazy frame, such as
    a scan of a Parquet file, is never read whole)."""
    rows = frame.lazy()
    names = rows.collect_schema().names()
    height = int(rows.select(pl.len()).collect().item())
    return names, [rows.slice(offset, rows_at_once) for offset in range(0, height, rows_at_once)]


def write_csv(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> Path:
    """A list as CSV with spreadsheet-safe cells (cell_text), as csv.writer writes it."""
    names, blocks = _blocks(frame, CSV_BLOCK_ROWS)
    with path.open("wb") as fh:
        if not names:
            fh.write(b"\r\n" * (1 + sum(block.select(pl.len()).collect().item() for block in blocks)))
            return path
        fh.write(_csv_lines([pl.Series(names, dtype=pl.String)]) if len(names) == 1
                 else _csv_lines([pl.Series([c], dtype=pl.String) for c in names]))

        def lines(block: pl.LazyFrame) -> bytes | memoryview:
            rows = block.collect()
            return _csv_lines([csv_cells(rows.get_column(c)) for c in names])

        for text in made_in_order(lines, blocks):
            fh.write(text)
    return path


def write_json_records(frame: pl.DataFrame | pl.LazyFrame, path: Path, rows_at_once: int = BLOCK_ROWS) -> Path:
    """A list as a JSON array of objects (times as ISO 8601 UTC), the text json.dumps(records,
    indent=2, ensure_ascii=False) gives, written a block of rows at a time: a million downloaders
    as one list of dicts would take gigabytes."""
    names, blocks = _blocks(frame, rows_at_once)
    keys = [json.dumps(c, ensure_ascii=False) + ": " for c in names]

    def records(block: pl.LazyFrame) -> bytes | memoryview:
        rows = block.collect()
        if not names:
            texts = pl.repeat("{}", rows.height, dtype=pl.String, eager=True)
        else:
            parts: list[pl.Expr] = []
            for i, (key, name) in enumerate(zip(keys, names, strict=True)):
                lead = ("{\n    " if i == 0 else ",\n    ") + key
                parts += [pl.lit(lead), pl.lit(json_fields(rows.get_column(name)))]
            texts = pl.select(pl.concat_str([*parts, pl.lit("\n  }")])).to_series()
        return joined_utf8(pl.lit(texts), ",\n  ") if rows.height else b""

    written = False
    with path.open("wb") as fh:
        fh.write(b"[")
        for text in made_in_order(records, blocks):
            if text:
                fh.write(b",\n  " if written else b"\n  ")
                fh.write(text)
                written = True
        fh.write(b"\n]\n" if written else b"]\n")
    return path
