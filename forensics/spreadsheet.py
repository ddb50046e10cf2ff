"""downloaders.xlsx: the downloader list for reviewers who work in a spreadsheet.

One sheet, a frozen and bold header row, an autofilter, column widths from the content (capped),
times as ISO 8601 UTC text (a spreadsheet's own dates have no time zone) and lists joined with
' | ' as in the CSV. Every text cell is written with `write_string`, never `write`, so XlsxWriter
does not turn a value into a formula or a number; text that a spreadsheet would run as a
formula when re-typed or exported to CSV (=, +, -, @, tab, CR) is neutralised as in the CSV
(OWASP "CSV injection").
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import xlsxwriter

from forensics.pipeline import cell_text

MIN_WIDTH = 6
MAX_WIDTH = 60


def write_downloaders_xlsx(frame: pl.DataFrame, path: Path, sheet: str = "downloaders") -> Path:
    """Write the downloader list to `path` as an XLSX workbook."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False})
    try:
        ws = workbook.add_worksheet(sheet)
        header = workbook.add_format({"bold": True, "bottom": 1, "text_wrap": True, "valign": "top"})
        text = workbook.add_format({"valign": "top"})
        widths = [max(MIN_WIDTH, len(c) + 2) for c in frame.columns]
        for col, name in enumerate(frame.columns):
            ws.write_string(0, col, name, header)
        for row_no, row in enumerate(frame.iter_rows(), start=1):
            for col, value in enumerate(row):
                if value is None:
                    ws.write_blank(row_no, col, None, text)
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    ws.write_number(row_no, col, value, text)
                    shown = len(f"{value:,}") if isinstance(value, int) else len(f"{value:.1f}")
                else:
                    cell = cell_text(value)
                    ws.write_string(row_no, col, cell, text)
                    shown = len(cell)
                widths[col] = max(widths[col], min(shown + 2, MAX_WIDTH))
        for col, width in enumerate(widths):
            ws.set_column(col, col, width)
        ws.freeze_panes(1, 0)
        if frame.columns:
            ws.autofilter(0, 0, max(frame.height, 1), len(frame.columns) - 1)
    finally:
        workbook.close()
    return path
