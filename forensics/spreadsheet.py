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
Rows are written in XlsxWriter's constant-memory mode, so a long list does not sit in memory.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import xlsxwriter

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


def _columns(frame: pl.DataFrame, timezone: str) -> list[tuple[str, str, str | None]]:
    """(source column, heading, zone) per sheet column: a time column gives one column per zone."""
    zones = [timezone, "UTC"] if timezone != "UTC" else ["UTC"]
    columns: list[tuple[str, str, str | None]] = []
    for name, dtype in frame.schema.items():
        if _is_time(dtype):
            columns += [(name, f"{name} ({zone})", zone) for zone in zones]
        else:
            columns.append((name, name, None))
    return columns


def _widths(frame: pl.DataFrame, columns: list[tuple[str, str, str | None]]) -> list[int]:
    """Column widths from the longest value shown (capped), computed before rows are written."""
    widths = []
    for name, heading, zone in columns:
        dtype = frame.schema[name]
        shown = 0
        if zone is not None:
            shown = len("2022-11-28 14:02:00.000")
        elif frame.height and (isinstance(dtype, pl.List) or dtype == pl.String):
            col = frame.get_column(name)
            if isinstance(dtype, pl.List):
                col = col.cast(pl.List(pl.String)).list.join(LIST_SEPARATOR)
            longest = col.str.len_chars().max()
            shown = longest if isinstance(longest, int) else 0
        elif dtype.is_numeric():
            values = frame.get_column(name).drop_nulls()
            if values.len():
                shown = max(len(_number(values.min())), len(_number(values.max())))
        elif dtype == pl.Boolean:
            shown = len("FALSE")
        widths.append(min(max(MIN_WIDTH, len(heading) + 2, shown + 2), MAX_WIDTH))
    return widths


def write_downloaders_xlsx(
    frame: pl.DataFrame,
    path: Path,
    sheet: str = "downloaders",
    timezone: str = "UTC",
    rows_per_sheet: int = MAX_DATA_ROWS,
) -> Path:
    """Write a list (the downloaders, or another export) to `path` as an XLSX workbook, with
    times in `timezone` and in UTC."""
    zone_of = {"UTC": UTC} | ({timezone: ZoneInfo(timezone)} if timezone != "UTC" else {})
    columns = _columns(frame, timezone)
    widths = _widths(frame, columns)
    with_ms = {
        name: bool(frame.get_column(name).dt.microsecond().fill_null(0).max() or 0)
        for name, dtype in frame.schema.items() if _is_time(dtype)
    }
    workbook = xlsxwriter.Workbook(
        str(path), {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
                    "constant_memory": True},
    )
    try:
        header = workbook.add_format({"bold": True, "bottom": 1, "text_wrap": True, "valign": "top"})
        cell = workbook.add_format({"valign": "top"})
        date = workbook.add_format({"valign": "top", "num_format": DATE_FORMAT})
        date_ms = workbook.add_format({"valign": "top", "num_format": DATE_FORMAT_MS})
        parts = max(1, math.ceil(frame.height / rows_per_sheet))
        sheets = []
        for part in range(parts):
            name = sheet if part == 0 else f"{sheet} ({part + 1})"
            rows = frame.slice(part * rows_per_sheet, rows_per_sheet)
            ws = workbook.add_worksheet(name[:31])
            sheets.append((name, rows.height))
            for col, width in enumerate(widths):
                ws.set_column(col, col, width)
            ws.freeze_panes(1, 0)
            if columns:
                ws.autofilter(0, 0, max(rows.height, 1), len(columns) - 1)
            for col, (_, heading, _) in enumerate(columns):
                ws.write_string(0, col, heading, header)
            positions = {name: i for i, name in enumerate(frame.columns)}
            for row_no, row in enumerate(rows.iter_rows(), start=1):
                for col, (source, _, zone) in enumerate(columns):
                    value = row[positions[source]]
                    if value is None:
                        ws.write_blank(row_no, col, None, cell)
                    elif zone is not None:
                        local = value.astimezone(zone_of[zone]).replace(tzinfo=None)
                        ws.write_datetime(row_no, col, local, date_ms if with_ms[source] else date)
                    elif isinstance(value, bool):
                        ws.write_boolean(row_no, col, value, cell)
                    elif isinstance(value, (int, float)) and math.isfinite(value):
                        ws.write_number(row_no, col, value, cell)
                    elif isinstance(value, datetime):  # a time without a zone: as it is
                        ws.write_datetime(row_no, col, value, date)
                    else:
                        ws.write_string(row_no, col, _text(value), cell)
        _about(workbook, sheets, timezone, [h for _, h, z in columns if z is not None])
    finally:
        workbook.close()
    return path


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
