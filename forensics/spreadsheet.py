"""downloaders.xlsx: the downloader list for reviewers who work in a spreadsheet.

Cells keep their types: numbers are numbers, true/false are the spreadsheet's booleans, and each
time column becomes real spreadsheet dates twice, in the case's time zone and in UTC (a
spreadsheet date has no zone, so the heading says which; in a UTC case there is one column).
Text is written with `write_string`, so it is never taken for a formula, a number or a link and
needs no formula guard: the cell holds the text as logged. Control characters and bidirectional
marks, which a spreadsheet would hide or act on (XLSX itself stores them as `_x0000_`), are
written visibly as `\\x00`, `\\x1b`, `\\u202e`, as on the terminal. Lists are joined with ' | '.

A sheet holds at most 1,048,576 rows; a longer list continues on sheets named "downloaders (2)",
"downloaders (3)", each with the heading row. An "about" sheet says all this in the workbook.
XlsxWriter writes the workbook (styles, widths, frozen heading, filter, the heading row, the about
sheet); the data rows are generated a block of rows at a time, column by column with polars string
expressions, as the XML XlsxWriter's constant-memory mode writes for each cell (`write_string`,
`write_number`, `write_boolean`, `write_datetime`, `write_blank`: the same bytes), and streamed into
the sheet's part of the zip. Calling XlsxWriter once per cell took minutes for a million rows;
values that are rare and awkward (control characters, `_x0000_`-like text, text longer than a cell
holds, numbers a double cannot hold exactly, types without a column rule) take the per-value path.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import polars as pl
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

from forensics.listfiles import DISTINCT_SHARE, joined_utf8, made_in_order
from forensics.terminal import printable

MIN_WIDTH = 6
MAX_WIDTH = 60
# The most rows a worksheet holds (Excel, LibreOffice), less the heading row.
MAX_DATA_ROWS = 1_048_575
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT_MS = "yyyy-mm-dd hh:mm:ss.000"
LIST_SEPARATOR = " | "


def _is_time(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.Datetime)


def _text(value: Any) -> str:
    """A value as the cell's text: lists joined, control characters visible."""
    if isinstance(value, list):
        value = LIST_SEPARATOR.join("" if v is None else str(v) for v in value)
    return printable(str(value))


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _columns(schema: pl.Schema, timezone: str) -> list[tuple[str, str, str | None]]:
    """(source column, heading, zone) per sheet column: a time column gives one column per zone."""
    zones = [timezone, "UTC"] if timezone != "UTC" else ["UTC"]
    columns: list[tuple[str, str, str | None]] = []
    for name, dtype in schema.items():
        if _is_time(dtype):
            columns += [(name, f"{name} ({zone})", zone) for zone in zones]
        else:
            columns.append((name, name, None))
    return columns


def _widths(rows: pl.LazyFrame, columns: list[tuple[str, str, str | None]]) -> list[int]:
    """Column widths from the longest value shown (capped), computed before rows are written."""
    schema = rows.collect_schema()
    wanted: list[pl.Expr] = []
    for i, (name, _, zone) in enumerate(columns):
        dtype = schema[name]
        if zone is None and (isinstance(dtype, pl.List) or dtype == pl.String):
            text = pl.col(name).cast(pl.List(pl.String)).list.join(LIST_SEPARATOR) if isinstance(dtype, pl.List) \
                else pl.col(name)
            wanted.append(text.str.len_chars().max().alias(f"longest {i}"))
        elif zone is None and dtype.is_numeric():
            wanted += [pl.col(name).min().alias(f"min {i}"), pl.col(name).max().alias(f"max {i}")]
    stats = rows.select(wanted).collect().row(0, named=True) if wanted else {}
    widths = []
    for i, (name, heading, zone) in enumerate(columns):
        dtype = schema[name]
        shown = 0
        if zone is not None:
            shown = len("2022-11-28 14:02:00.000")
        elif f"longest {i}" in stats:
            longest = stats[f"longest {i}"]
            shown = longest if isinstance(longest, int) else 0
        elif f"min {i}" in stats:
            if stats[f"min {i}"] is not None:
                shown = max(len(_number(stats[f"min {i}"])), len(_number(stats[f"max {i}"])))
        elif dtype == pl.Boolean:
            shown = len("FALSE")
        widths.append(min(max(MIN_WIDTH, len(heading) + 2, shown + 2), MAX_WIDTH))
    return widths


def write_downloaders_xlsx(
    frame: pl.DataFrame | pl.LazyFrame,
    path: Path,
    sheet: str = "downloaders",
    timezone: str = "UTC",
    rows_per_sheet: int = MAX_DATA_ROWS,
) -> Path:
    """Write a list (the downloaders, or another export) to `path` as an XLSX workbook, with
    times in `timezone` and in UTC. A lazy frame (a scan of a Parquet file) is read a block of
    rows at a time, so a list of millions of rows is never in memory whole."""
    rows = frame.lazy()
    schema = rows.collect_schema()
    height = int(rows.select(pl.len()).collect().item())
    columns = _columns(schema, timezone)
    widths = _widths(rows, columns)
    times = [name for name, dtype in schema.items() if _is_time(dtype)]
    with_ms: dict[str, bool] = {}
    if times:
        most = rows.select([pl.col(n).dt.microsecond().fill_null(0).max() for n in times]).collect().row(0)
        with_ms = {n: bool(v or 0) for n, v in zip(times, most, strict=True)}
    blocks = _Blocks(rows, columns, with_ms)
    parts = max(1, math.ceil(height / rows_per_sheet))
    bounds = [(part * rows_per_sheet, min(height, (part + 1) * rows_per_sheet)) for part in range(parts)]
    surveys = [blocks.survey(start, stop) for start, stop in bounds]
    scaffold = path.with_name(f".{path.name}.scaffold")
    try:
        styles = _write_scaffold(scaffold, sheet, columns, widths, bounds, [s[0] for s in surveys], timezone)
        _fill_sheets(scaffold, path, blocks, bounds, [s[1] for s in surveys], styles)
    finally:
        scaffold.unlink(missing_ok=True)
    return path


# Styles of the data cells, by the name each column rule gives a cell.
_STYLES = ("cell", "date", "date_ms")


def _fast_rule(dtype: pl.DataType, zone: str | None) -> str | None:
    """The column rule that makes a column's cells with polars expressions, None when every cell
    takes the per-value path. A column rule gives a missing value the "cell" style and any other
    the date style ("time") or "cell" (every other rule)."""
    if zone is not None:
        return "time" if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None else None
    if dtype == pl.Null:
        return "null"
    if dtype == pl.String:
        return "text"
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if isinstance(dtype, pl.List) and (dtype.inner in (pl.String, pl.Null) or dtype.inner.is_integer()):
        return "list"
    return None


class _ColumnCells:
    """One sheet column's cells: per row, the style's name and the XML after the style attribute
    (`/>` for a blank, `><v>1</v></c>` for a number, ` t="inlineStr"><is>...` for text), as
    XlsxWriter writes them in constant-memory mode."""

    def __init__(self, frame: pl.DataFrame, source: str, zone: str | None, with_ms: bool) -> None:
        self.values = frame.get_column(source)
        self.zone = zone
        self.date_style = "date_ms" if with_ms else "date"
        # The per-value path's (style, rest) for the rows it takes, by row number in the frame.
        self.by_value: dict[int, tuple[str, str]] = {}
        self.fast = _fast_rule(self.values.dtype, zone)
        if self.fast is None:
            self.by_value = {i: _cell_by_value(v, zone, self.date_style) for i, v in enumerate(self.values.to_list())}

    def styles(self, start: int, stop: int) -> pl.Series:
        """The style name of each row's cell."""
        values = self.values.slice(start, stop - start)
        if self.fast is None:
            return pl.Series([self.by_value[i][0] for i in range(start, stop)], dtype=pl.String)
        styled = self.date_style if self.fast == "time" else "cell"
        return pl.select(
            pl.when(pl.lit(values).is_null()).then(pl.lit("cell")).otherwise(pl.lit(styled))
        ).to_series()

    def one_style(self, start: int, stop: int) -> str | None:
        """The style name every row's cell has, when one is sure without looking at each row (a
        column read by a column rule with no missing value, or none at all), else None."""
        if self.fast is None:
            return None
        values = self.values.slice(start, stop - start)
        nulls = values.null_count()
        if nulls == values.len():
            return "cell"
        if nulls == 0:
            return self.date_style if self.fast == "time" else "cell"
        return None

    def size_bound(self, start: int, stop: int, close: bool) -> int:
        """At least as many bytes as the XML of rows start..stop of this column; with `close`, a
        bound nearer to it that takes longer to compute."""
        rows = stop - start
        if self.fast is None:
            return sum(len(self.by_value[i][1].encode("utf-8")) for i in range(start, stop)) + _CELL_BYTES * rows
        if self.fast not in ("text", "list"):
            return _CELL_BYTES * rows
        values = self.values.slice(start, rows)
        text = values if self.fast == "text" else _joined(values)
        size = text.str.len_bytes()
        if not close:
            return 6 * int(size.sum() or 0) + _CELL_BYTES * rows
        # &amp; adds four bytes to one; the per-value path's escapes at most multiply text by six
        # (a bidirectional mark of three bytes shown as \u202e, each \ then a byte).
        escaped = int(text.str.count_matches("[&<>]").sum() or 0)
        rare = int(size.filter(self._rare(text)).sum() or 0)
        return int(size.sum() or 0) + 4 * escaped + 5 * rare + _CELL_BYTES * rows

    @staticmethod
    def _rare(text: pl.Series) -> pl.Series:
        return (text.str.contains(_RARE_TEXT) | (text.str.len_bytes() > _MAX_FAST_TEXT_BYTES)).fill_null(False)

    def rest(self, start: int, stop: int) -> pl.Series:
        """The XML of each row's cell after its style attribute."""
        values = self.values.slice(start, stop - start)
        slow: dict[int, str] = {}
        if self.fast is None:
            return pl.Series([self.by_value[i][1] for i in range(start, stop)], dtype=pl.String)
        if self.fast == "null":
            return pl.repeat("/>", values.len(), dtype=pl.String, eager=True)
        if self.fast in ("text", "list"):
            text = values if self.fast == "text" else _joined(values)
            distinct = text.drop_nulls().unique()
            if distinct.len() <= DISTINCT_SHARE * text.len():
                # Most values repeat (an operator's name, a file's path, one user agent on many
                # rows): each distinct value's cell is made once and the rows take theirs.
                cells = _text_cells(distinct)
                rest = pl.lit(text.replace_strict(distinct, cells, default=None, return_dtype=pl.String))
            else:
                for i in self._rare(text).arg_true().to_list():
                    slow[i] = _text_rest(_text(text[i]))
                rest = _text_rest_expr(pl.lit(text))
        elif self.fast == "bool":
            rest = pl.when(pl.lit(values)).then(pl.lit(' t="b"><v>1</v></c>')).otherwise(pl.lit(' t="b"><v>0</v></c>'))
        elif self.fast == "int":
            # %.16G of an integer is its digits while a double holds it exactly.
            if values.dtype in (pl.Int64, pl.UInt64, pl.Int128, pl.UInt128):
                exact = (values >= -_EXACT_INTEGER) & (values <= _EXACT_INTEGER)
                for i in (~exact).fill_null(False).arg_true().to_list():
                    slow[i] = _cell_by_value(values[i], None, "")[1]
            rest = _number_rest(pl.lit(values).cast(pl.String))
        elif self.fast == "float":
            rest = _number_rest(pl.lit(_float_texts(values)))
            for i in (~values.is_finite()).fill_null(False).arg_true().to_list():
                slow[i] = _cell_by_value(values[i], None, "")[1]
        else:  # time
            excel = _excel_serial(values, self.zone or "UTC")
            naive = values.dt.replace_time_zone(None)
            rare = ((naive < _FAST_TIMES[0]) | (naive >= _FAST_TIMES[1])).fill_null(False)
            for i in rare.arg_true().to_list():
                slow[i] = _cell_by_value(values[i], self.zone, self.date_style)[1]
            rest = _number_rest(pl.lit(_float_texts(excel)))
        out = pl.select(pl.when(pl.lit(values).is_null()).then(pl.lit("/>")).otherwise(rest)).to_series()
        if slow:
            out = out.scatter(list(slow), list(slow.values()))
        return out


# One column of one block, surveyed: (quick bound on its XML's bytes, the close bound when asked,
# the block's first row using each style, the style of the sheet's last row when the block ends it).
_ColumnSurvey = tuple[int, Callable[[], int], dict[str, int], str | None]


class _Blocks:
    """The list's rows a block at a time, as each sheet column's cells."""

    def __init__(self, rows: pl.LazyFrame, columns: list[tuple[str, str, str | None]], with_ms: dict[str, bool]):
        self.rows = rows
        self.columns = columns
        self.with_ms = with_ms

    def cells(self, start: int, stop: int) -> list[_ColumnCells]:
        block = self.rows.slice(start, stop - start).collect()
        return [_ColumnCells(block, source, zone, self.with_ms.get(source, False)) for source, _, zone in self.columns]

    def survey(self, start: int, stop: int) -> tuple[set[tuple[int, int, str]], int]:
        """For the sheet of rows start..stop: where each style is first used before the sheet's last
        row and every style of that row (sheet row, column, style), and a bound on its XML's bytes."""
        at_once = self._survey_at_once(start, stop)
        if at_once is not None:
            return at_once
        first_uses: set[tuple[int, int, str]] = set()
        found: set[tuple[int, str]] = set()
        size = _ROW_BYTES * (stop - start)
        spans = [(begin, min(stop, begin + _BLOCK_ROWS)) for begin in range(start, stop, _BLOCK_ROWS)]
        surveyed = made_in_order(lambda span: self._survey_block(*span, stop), spans)
        for (begin, _), columns in zip(spans, surveyed, strict=True):
            for col, (quick, close, first_rows, last_style) in enumerate(columns):
                # The quick bound while the sheet is surely under ZIP64's limit, then the close one.
                size += quick if size + quick < zipfile.ZIP64_LIMIT else close()
                for style, row in first_rows.items():
                    if (col, style) not in found:
                        found.add((col, style))
                        first_uses.add((begin - start + row + 1, col, style))
                if last_style is not None:
                    first_uses.add((stop - start, col, last_style))
        return first_uses, size

    def _survey_at_once(self, start: int, stop: int) -> tuple[set[tuple[int, int, str]], int] | None:
        """`survey` in a few queries over the sheet's rows, where every column has a column rule (a
        cell's style then depends only on whether its value is missing); else None. The bound on
        the XML's bytes is added up block by block and column by column as `survey` adds it, from
        each block's text lengths, and past the point where a quick bound would pass ZIP64's
        limit, from the close bounds (computed for those blocks only)."""
        schema = self.rows.collect_schema()
        rules = [_fast_rule(schema[source], zone) for source, _, zone in self.columns]
        rows = stop - start
        if rows == 0:
            return set(), 0
        if None in rules:
            return None
        sheet = self.rows.slice(start, rows)
        ends: list[pl.Expr] = []
        texts: dict[int, pl.Expr] = {}
        for col, ((source, _, _), rule) in enumerate(zip(self.columns, rules, strict=True)):
            value = pl.col(source)
            before_last = value.head(rows - 1)
            ends += [
                before_last.is_null().arg_true().first().alias(f"null {col}"),
                before_last.is_not_null().arg_true().first().alias(f"value {col}"),
                value.last().is_null().alias(f"last null {col}"),
            ]
            if rule in ("text", "list"):
                texts[col] = value if rule == "text" else _joined_expr(value)
        found = sheet.select(ends).collect().row(0, named=True)
        first_uses: set[tuple[int, int, str]] = set()
        for col, ((source, _, _), rule) in enumerate(zip(self.columns, rules, strict=True)):
            styled = self.date_style_of(source) if rule == "time" else "cell"
            earliest: dict[str, int] = {}
            for style, row in (("cell", found[f"null {col}"]), (styled, found[f"value {col}"])):
                if row is not None:
                    earliest[style] = min(row, earliest.get(style, row))
            first_uses |= {(row + 1, col, style) for style, row in earliest.items()}
            first_uses.add((rows, col, "cell" if found[f"last null {col}"] else styled))

        blocks = sheet.with_row_index(_ROW_INDEX).with_columns((pl.col(_ROW_INDEX) // _BLOCK_ROWS).alias(_BLOCK_INDEX))
        lengths = blocks.group_by(_BLOCK_INDEX).agg(
            pl.len().alias("rows"), *[text.str.len_bytes().sum().alias(f"bytes {col}") for col, text in texts.items()]
        ).sort(_BLOCK_INDEX).collect()
        size = _ROW_BYTES * rows
        close: dict[tuple[int, int], int] | None = None
        for block, block_rows, *sums in lengths.iter_rows():
            text_bytes = dict(zip(texts, sums, strict=True))
            for col in range(len(self.columns)):
                quick = 6 * int(text_bytes.get(col) or 0) + _CELL_BYTES * block_rows
                if size + quick < zipfile.ZIP64_LIMIT or col not in texts:
                    size += quick  # a column without text: its close bound is its quick one
                    continue
                if close is None:
                    close = self._close_bounds(blocks, texts, block)
                size += close[(block, col)] + _CELL_BYTES * block_rows
        return first_uses, size

    @staticmethod
    def _close_bounds(blocks: pl.LazyFrame, texts: dict[int, pl.Expr], first_block: int) -> dict[tuple[int, int], int]:
        """The close bound of each text column's XML, less the cells' markup, for every block from
        `first_block` on (as `_ColumnCells.size_bound` computes it)."""
        wanted: list[pl.Expr] = []
        for col, text in texts.items():
            size = text.str.len_bytes()
            rare = (text.str.contains(_RARE_TEXT) | (size > _MAX_FAST_TEXT_BYTES)).fill_null(False)
            wanted.append(
                (size.sum() + 4 * text.str.count_matches("[&<>]").sum() + 5 * size.filter(rare).sum()).alias(str(col))
            )
        bounds = blocks.filter(pl.col(_BLOCK_INDEX) >= first_block).group_by(_BLOCK_INDEX).agg(wanted).collect()
        return {
            (int(row[_BLOCK_INDEX]), int(col)): int(value or 0)
            for row in bounds.iter_rows(named=True) for col, value in row.items() if col != _BLOCK_INDEX
        }

    def date_style_of(self, source: str) -> str:
        return "date_ms" if self.with_ms.get(source, False) else "date"

    def _survey_block(self, begin: int, end: int, stop: int) -> list[_ColumnSurvey]:
        """Per column of rows begin..end: the quick bound on its XML's bytes, the close one (computed
        when asked), the first row of the block using each style before the sheet's last row, and
        the last row's style when the block ends the sheet."""
        rows = end - begin
        before_last = rows if end < stop else rows - 1
        out: list[_ColumnSurvey] = []
        for column in self.cells(begin, end):
            styles = column.styles(0, rows)
            first_rows: dict[str, int] = {}
            for style in _STYLES:
                hit = (styles.head(before_last) == style).arg_true()
                if hit.len():
                    first_rows[style] = int(hit[0])
            quick = column.size_bound(0, rows, close=False)
            close = partial(column.size_bound, 0, rows, close=True)
            out.append((quick, close, first_rows, styles[rows - 1] if end == stop else None))
        return out


# Text the fast path leaves to the per-value path: what `printable` escapes, XLSX's own
# `_xHHHH_` escape and the two non-characters XlsxWriter escapes.
_RARE_TEXT = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud7ff-\uf8ff\ufffe\uffff]" \
    "|_x[0-9a-fA-F]{4}_"
# A cell holds 32,767 UTF-16 units; text of at most that many UTF-8 bytes never needs cutting.
_MAX_FAST_TEXT_BYTES = 32_767
_EXACT_INTEGER = 2**53
# Times the fast path converts: polars' time-zone rules agree with Python's zoneinfo from 1970 to
# 2037 (later summer times differ), and XlsxWriter counts days before 1900-03-01 differently
# (Excel's 1900 leap day). Other times take the per-value path.
_FAST_TIMES = (datetime(1970, 1, 1), datetime(2037, 1, 1))
# The white space that XlsxWriter keeps with xml:space="preserve" when text begins or ends with it
# (Python's \s, after the escapes, so no control characters are left). The first and last
# characters are compared with the set: a regular expression for "at the end" reads all the text.
_EDGE_SPACE = (" ", "\xa0", "\u1680", *map(chr, range(0x2000, 0x200B)), "\u202f", "\u205f", "\u3000")


def _text_cells(text: pl.Series) -> pl.Series:
    """The XML after the style attribute of each text (none missing), rare text by the per-value
    path."""
    cells = pl.select(_text_rest_expr(pl.lit(text))).to_series()
    rare = _ColumnCells._rare(text)
    if rare.any():
        positions = rare.arg_true()
        cells = cells.scatter(positions, [_text_rest(_text(t)) for t in text.gather(positions).to_list()])
    return cells


def _joined(values: pl.Series) -> pl.Series:
    """A list column as text: items joined with ' | ', a missing item as empty text."""
    return pl.select(_joined_expr(pl.lit(values))).to_series()


def _joined_expr(values: pl.Expr) -> pl.Expr:
    return values.cast(pl.List(pl.String)).list.eval(pl.element().fill_null("")).list.join(LIST_SEPARATOR)


def _text_rest_expr(text: pl.Expr) -> pl.Expr:
    escaped = text.str.replace_many(["&", "<", ">"], ["&amp;", "&lt;", "&gt;"])
    edge = text.str.head(1).is_in(_EDGE_SPACE) | text.str.tail(1).is_in(_EDGE_SPACE)
    preserve = pl.when(edge).then(pl.lit(' xml:space="preserve"')).otherwise(pl.lit(""))
    return pl.concat_str([pl.lit(' t="inlineStr"><is><t'), preserve, pl.lit(">"), escaped, pl.lit("</t></is></c>")])


def _number_rest(text: pl.Expr) -> pl.Expr:
    return pl.concat_str([pl.lit("><v>"), text, pl.lit("</v></c>")])


def _float_texts(values: pl.Series) -> pl.Series:
    """Each finite number as XlsxWriter writes it (`%.16G`), formatted once per distinct value."""
    distinct = values.filter(values.is_finite()).unique()
    texts = [f"{v:.16G}" for v in distinct.to_list()]
    return values.replace_strict(distinct, pl.Series(texts, dtype=pl.String), default=None, return_dtype=pl.String)


def _excel_serial(values: pl.Series, zone: str) -> pl.Series:
    """Spreadsheet serial dates of the times read in `zone`, computed as XlsxWriter computes them
    (whole days since 1899-12-31, plus seconds and microseconds over a day, plus Excel's 1900
    leap day), in the same floating-point steps, so the numbers are the same to the last bit."""
    local = values.dt.convert_time_zone(zone).dt.replace_time_zone(None)
    micros = local.dt.epoch("us") + _DAYS_1899_12_31_TO_1970 * _DAY_US
    days = micros // _DAY_US
    within = micros - days * _DAY_US
    serial = days.cast(pl.Float64) + (
        (within // 1_000_000).cast(pl.Float64) + (within % 1_000_000).cast(pl.Float64) / 1e6
    ) / 86400.0
    return pl.select(pl.when(pl.lit(serial) > 59).then(pl.lit(serial) + 1.0).otherwise(pl.lit(serial))).to_series()


_DAY_US = 86_400_000_000
_DAYS_1899_12_31_TO_1970 = (datetime(1970, 1, 1) - datetime(1899, 12, 31)).days


def _text_rest(text: str) -> str:
    """Text as XlsxWriter's constant-memory `write_string` writes it: cut to 32,767 UTF-16 units,
    `_xHHHH_` escapes, white space kept at the ends, &, < and > escaped."""
    if len(text) > _MAX_FAST_TEXT_BYTES // 2 and len(text.encode("utf-16-le", "surrogatepass")) // 2 > 32_767:
        text = text.encode("utf-16-le", "surrogatepass")[: 2 * 32_767].decode("utf-16-le", "ignore")
    text = re.sub("(_x[0-9a-fA-F]{4}_)", r"_x005F\1", text)
    text = re.sub("([\x00-\x08\x0b-\x1f])", lambda m: f"_x{ord(m.group(1)):04X}_", text)
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    preserve = ' xml:space="preserve"' if re.search(r"^\s|\s$", text) else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f' t="inlineStr"><is><t{preserve}>{text}</t></is></c>'


def _cell_by_value(value: Any, zone: str | None, date_style: str) -> tuple[str, str]:
    """One value's (style, XML after the style attribute), by the rules of `write_downloaders_xlsx`."""
    if value is None:
        return "cell", "/>"
    if zone is not None:
        local = value.astimezone(UTC if zone == "UTC" else ZoneInfo(zone)).replace(tzinfo=None)
        return date_style, f"><v>{_serial(local):.16G}</v></c>"
    if isinstance(value, bool):
        return "cell", f' t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)) and math.isfinite(value):
        return "cell", f"><v>{value:.16G}</v></c>"
    if isinstance(value, datetime):  # a time without a zone: as it is
        return "date", f"><v>{_serial(value):.16G}</v></c>"
    return "cell", _text_rest(_text(value))


def _serial(value: datetime) -> float:
    """A spreadsheet serial date (days since 1899-12-31, with Excel's 1900 leap day)."""
    delta = value.replace(tzinfo=None) - datetime(1899, 12, 31)
    serial = delta.days + (float(delta.seconds) + float(delta.microseconds) / 1e6) / (60 * 60 * 24)
    if value.isocalendar() == (1900, 1, 1):
        serial -= 1
    return serial + 1 if serial > 59 else serial


def _write_scaffold(
    path: Path,
    sheet: str,
    columns: list[tuple[str, str, str | None]],
    widths: list[int],
    bounds: list[tuple[int, int]],
    first_uses: list[set[tuple[int, int, str]]],
    timezone: str,
) -> dict[str, int]:
    """The workbook without its data rows, written by XlsxWriter; returns each cell style's index.

    A style's index in the workbook is given by the order in which cells first use it, so one
    blank cell is written where each style is first used on each sheet, and every cell of each
    sheet's last row (written when the workbook closes): XlsxWriter then numbers the styles and
    sizes each sheet as writing every cell did. These cells are replaced by the real rows."""
    workbook = xlsxwriter.Workbook(
        str(path), {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
                    "constant_memory": True},
    )
    try:
        header = workbook.add_format({"bold": True, "bottom": 1, "text_wrap": True, "valign": "top"})
        formats = {
            "cell": workbook.add_format({"valign": "top"}),
            "date": workbook.add_format({"valign": "top", "num_format": DATE_FORMAT}),
            "date_ms": workbook.add_format({"valign": "top", "num_format": DATE_FORMAT_MS}),
        }
        sheets = []
        for part, (start, stop) in enumerate(bounds):
            name = sheet if part == 0 else f"{sheet} ({part + 1})"
            ws = workbook.add_worksheet(name[:31])
            sheets.append((name, stop - start))
            for col, width in enumerate(widths):
                ws.set_column(col, col, width)
            ws.freeze_panes(1, 0)
            if columns:
                ws.autofilter(0, 0, max(stop - start, 1), len(columns) - 1)
            for col, (_, heading, _) in enumerate(columns):
                ws.write_string(0, col, heading, header)
            for row, col, style in sorted(first_uses[part]):
                ws.write_blank(row, col, None, formats[style])
        _about(workbook, sheets, timezone, [h for _, h, z in columns if z is not None])
    finally:
        workbook.close()
    return {name: fmt.xf_index for name, fmt in formats.items() if fmt.xf_index is not None}


# Rows generated and written at a time: a block of a few hundred megabytes of XML at most.
_BLOCK_ROWS = 20_000
# Working columns of the survey's queries (names no list column has: they begin with a space).
_ROW_INDEX, _BLOCK_INDEX = " row", " block"
# The sheets' rows are deflated fast (level 1): a third larger than XlsxWriter's level 6, and
# three times less work for a sheet of a million rows. The small parts keep XlsxWriter's level.
_ROWS_LEVEL = 1
# The most bytes a cell's or a row's markup takes besides the value (`<c r="AF1048576" s="12" ...`).
_CELL_BYTES = 80
_ROW_BYTES = 30


def _fill_sheets(
    scaffold: Path,
    path: Path,
    blocks: _Blocks,
    bounds: list[tuple[int, int]],
    sizes: list[int],
    styles: dict[str, int],
) -> None:
    """Copy the scaffold workbook to `path`, with each data sheet's rows after its heading row.
    The next blocks of rows are read and generated (polars, outside the GIL) while one is deflated."""
    letters = [xl_col_to_name(col) for col in range(len(blocks.columns))]
    style_text = {name: f' s="{index}"' for name, index in styles.items()}
    sheet_parts = {f"xl/worksheets/sheet{part + 1}.xml": part for part in range(len(bounds))}
    with (
        zipfile.ZipFile(scaffold) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=_ROWS_LEVEL) as out,
    ):
        for info in src.infolist():
            xml = src.read(info).decode("utf-8")
            if info.filename not in sheet_parts or not blocks.columns:
                target = zipfile.ZipInfo(info.filename, info.date_time)
                target.external_attr = info.external_attr
                out.writestr(target, xml.encode("utf-8"), zipfile.ZIP_DEFLATED, compresslevel=6)
                continue
            part = sheet_parts[info.filename]
            start, stop = bounds[part]
            # The heading row stays; the scaffold's placeholder cells after it go.
            head_end = xml.index("</row>", xml.index("<sheetData>")) + len("</row>")
            rows = [(b, min(stop, b + _BLOCK_ROWS), b - start + 2) for b in range(start, stop, _BLOCK_ROWS)]
            # ZIP64 headers only where a sheet may pass 4 GiB: some spreadsheet programs refuse them.
            large = sizes[part] + len(xml) >= zipfile.ZIP64_LIMIT
            with out.open(info.filename, "w", force_zip64=large) as fh:
                entry = _SegmentedEntry(fh)
                entry.write(entry.piece(xml[:head_end].encode("utf-8")))
                def piece(span: tuple[int, int, int], entry: _SegmentedEntry = entry) -> _Piece:
                    return entry.piece(_rows_xml(blocks, letters, style_text, *span))

                for made in made_in_order(piece, rows):
                    entry.write(made)
                entry.write(entry.piece(xml[xml.index("</sheetData>"):].encode("utf-8")))
                entry.finish()


class _Piece(NamedTuple):
    """Part of a ZIP entry's content: deflated on its own (`deflated`, ending on a byte boundary but
    not ending the stream) with the CRC-32 and length of its text, or the text itself (`text`)
    where the entry is written through zipfile."""

    deflated: bytes
    crc: int
    size: int
    text: bytes | memoryview = b""


class _SegmentedEntry:
    """A ZIP entry opened for writing whose content is deflated a piece at a time on the threads that
    make the pieces, by ISA-L (PyPI isal, already used to read gzip; it releases the GIL).

    Deflate streams deflated apart and each ended with a sync flush (an empty stored block that ends
    on a byte boundary), then put one after the other and closed by a last empty block, are one
    valid deflate stream; the entry's CRC-32 is combined from the pieces'. Deflated and checked on
    the one thread that writes the file, a workbook of ten million rows (12 GB of XML) spent most
    of its time there while the threads making the rows waited. zipfile has no public way to take
    content deflated elsewhere, so the entry's counts are kept as its own write would keep them;
    where this Python's zipfile keeps them elsewhere, the text goes through its write instead, with
    ISA-L's deflate if it can be given (the same workbook, written more slowly)."""

    _COUNTS = ("_compressor", "_crc", "_file_size", "_compress_size", "_fileobj")

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.apart = all(hasattr(entry, name) for name in self._COUNTS) and entry._compressor is not None \
            and entry._file_size == 0
        if not self.apart:
            _deflate_with_isal(entry)

    def piece(self, text: bytes | memoryview) -> _Piece:
        """A piece of content, deflated here (any thread) when the pieces are written apart."""
        from isal import isal_zlib

        if not self.apart:
            return _Piece(b"", 0, len(text), text)
        deflate = isal_zlib.compressobj(_ROWS_LEVEL, isal_zlib.DEFLATED, -15)
        deflated = deflate.compress(text) + deflate.flush(isal_zlib.Z_SYNC_FLUSH)
        return _Piece(deflated, isal_zlib.crc32(text), len(text))

    def write(self, piece: _Piece) -> None:
        from isal import isal_zlib

        if not self.apart:
            self.entry.write(piece.text)
            return
        entry = self.entry
        entry._crc = isal_zlib.crc32_combine(entry._crc, piece.crc, piece.size)
        entry._file_size += piece.size
        entry._compress_size += len(piece.deflated)
        entry._fileobj.write(piece.deflated)

    def finish(self) -> None:
        """Before the entry is closed: its closing writes the stream's last block (empty) and the
        counts into the entry's headers."""
        from isal import isal_zlib

        if self.apart:
            self.entry._compressor = _LastBlock(isal_zlib.compressobj(_ROWS_LEVEL, isal_zlib.DEFLATED, -15).flush())


class _LastBlock:
    """Stands for the entry's deflater when the entry is closed: it gives the stream's last block."""

    def __init__(self, block: bytes) -> None:
        self.block = block

    def flush(self) -> bytes:
        return self.block


def _deflate_with_isal(entry: Any) -> None:
    """Deflate a ZIP entry being written with ISA-L's deflate instead of zlib's: the same format at
    the same level, in a third of zlib's time (1.2 GB of sheet XML: about 2.3 -> 0.6 CPU s).
    zipfile has no public way to choose the deflater, so the entry's own one is replaced before
    anything is written; where zipfile keeps it elsewhere, zlib's stays and only the speed differs."""
    from isal import isal_zlib

    if getattr(entry, "_compressor", None) is not None and entry._file_size == 0:
        entry._compressor = isal_zlib.compressobj(_ROWS_LEVEL, isal_zlib.DEFLATED, -15)


def _rows_xml(
    blocks: _Blocks, letters: list[str], style_text: dict[str, str], start: int, stop: int, first_row: int
) -> memoryview:
    """The `<row>` elements of list rows start..stop, numbered from first_row in the sheet."""
    rows = stop - start
    number = pl.int_range(first_row, first_row + rows, eager=True).cast(pl.String)
    parts: list[pl.Expr] = [pl.lit('<row r="'), pl.lit(number), pl.lit('">')]
    for letter, column in zip(letters, blocks.cells(start, stop), strict=True):
        rest = column.rest(0, rows)
        one = column.one_style(0, rows)
        if one is not None:  # a column of one style: its attribute is text, not a column of it
            parts += [pl.lit(f'<c r="{letter}'), pl.lit(number), pl.lit(f'"{style_text[one]}'), pl.lit(rest)]
            continue
        style = column.styles(0, rows).replace_strict(style_text, return_dtype=pl.String)
        parts += [pl.lit(f'<c r="{letter}'), pl.lit(number), pl.lit('"'), pl.lit(style), pl.lit(rest)]
    parts.append(pl.lit("</row>"))
    return joined_utf8(pl.concat_str(parts))


def _about(workbook: Any, sheets: list[tuple[str, int]], timezone: str, time_columns: list[str]) -> None:
    """A last sheet that says how the cells were written, where the reviewer will look."""
    ws = workbook.add_worksheet("about")
    bold = workbook.add_format({"bold": True})
    wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
    ws.set_column(0, 0, 100)
    total = sum(n for _, n in sheets)
    notes = [
        f"{total:,} rows on " + ", ".join(f'"{name}" ({n:,})' for name, n in sheets)
        + f"; a sheet holds at most {MAX_DATA_ROWS:,} rows below its heading, so a longer list continues "
        "on the next sheet.",
        (
            f"Times are spreadsheet dates in the case's time zone ({timezone}) and again in UTC; the heading "
            "of each time column names its zone: " + ", ".join(time_columns) + "."
            if timezone != "UTC"
            else "Times are spreadsheet dates in UTC (the case's time zone); the heading of each time "
            "column says so: " + ", ".join(time_columns) + "."
        )
        if time_columns
        else "There are no time columns.",
        "Text is as logged, except control characters and bidirectional marks, which are written "
        "visibly as \\x00, \\x1b, \\x0a (a line break), \\x09 (a tab) or \\u202e, as forensics shows "
        "them on the terminal; the CSV, Parquet and JSON files keep them as they are.",
        f"Lists (status codes, user agents, referrers, sources, flags) are joined with '{LIST_SEPARATOR}'.",
        "true/false columns are the spreadsheet's booleans; numbers are numbers.",
    ]
    ws.write_string(0, 0, "How this workbook is written", bold)
    for i, note in enumerate(notes, start=1):
        ws.write_string(i, 0, note, wrap)
