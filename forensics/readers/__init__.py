"""One reader per family of formats. A reader turns chunks of a file into canonical rows,
rejects (line, reason) and counts of skipped lines; it never drops a line silently."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl
from polars.exceptions import PanicException

from forensics.formats import FormatDef
from forensics.inputs import LONG_LINE_HEAD, ReadState, count_lines
from forensics.schema import REJECTS, empty_requests_frame

# What polars raises for input it will not read: its errors, and a panic inside it, which pyo3
# raises as PanicException, a BaseException (read_ndjson has panicked on lines whose key held a
# null in one part of the input and a float in another). Either way the lines concerned go to
# the exact path, as for any line the fast reading refuses; a panic must not stop the run.
POLARS_REFUSED: tuple[type[BaseException], ...] = (Exception, PanicException)


@dataclass
class ChunkResult:
    requests: pl.DataFrame
    rejects: pl.DataFrame  # columns: line_no, reason, line
    skipped: Counter[str] = field(default_factory=Counter)


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"line_no": pl.Int64, "reason": pl.String, "line": pl.String}
    )


def make_reader(fmt: FormatDef, source_tz: str | None, fields: str | None = None):  # type: ignore[no-untyped-def]
    if fmt.family == "text":
        from forensics.readers.text import TextReader

        return TextReader(fmt, source_tz)
    if fmt.family == "w3c":
        from forensics.readers.w3c import W3CReader

        return W3CReader(fmt, source_tz, fields)
    if fmt.family == "json":
        from forensics.readers.jsonl import JsonReader

        return JsonReader(fmt, source_tz)
    raise ValueError(fmt.family)


def empty_result() -> ChunkResult:
    return ChunkResult(empty_requests_frame(), empty_rejects())


def long_line_rejects(state: ReadState, limit: int) -> pl.DataFrame:
    """Rejects for the lines over the length limit that reading streamed past (and clears
    them from the state): their length and first bytes are kept."""
    rows = state.long_lines
    state.long_lines = []
    return pl.DataFrame(
        {
            "line_no": pl.Series([r.line_no for r in rows], dtype=pl.Int64),
            "reason": pl.Series(
                [
                    f"line too long ({r.length} bytes, over the limit of {limit}): "
                    f"only its first {LONG_LINE_HEAD} bytes are kept"
                    for r in rows
                ],
                dtype=pl.String,
            ),
            "line": pl.Series([r.head.decode("utf-8", "backslashreplace") for r in rows], dtype=pl.String),
        }
    )


_BOM = b"\xef\xbb\xbf"


def polars_lines(chunk: bytes, n_lines: int | None = None) -> pl.Series | None:
    """The chunk's lines as polars' CSV reader splits them (it drops the CR of a CRLF line end;
    any other CR stays in its line); None when that cannot be had exactly: bytes that are not
    UTF-8, a chunk starting with a byte order mark (which polars drops), or a line that polars
    splits otherwise (then the count differs). Blank lines are "" (not null)."""
    if chunk.startswith(_BOM):
        return None
    if n_lines is None:
        n_lines = count_lines(chunk)
    try:
        lines = pl.read_csv(
            chunk, separator="\x1f", quote_char=None, has_header=False, new_columns=["l"],
            schema={"l": pl.String}, infer_schema=False, truncate_ragged_lines=False,
        ).get_column("l")
    except POLARS_REFUSED:
        return None
    if lines.len() != n_lines:
        return None
    return lines.fill_null("")


def native_lines(chunk: bytes, n_lines: int | None = None) -> pl.Series | None:
    """The chunk's lines as decode_lines gives them (a trailing CR removed as the readers do),
    read natively; None when polars_lines cannot have them exactly."""
    lines = polars_lines(chunk, n_lines)
    if lines is None:
        return None
    return lines.str.strip_chars_end("\r") if b"\r" in chunk else lines


def decode_lines(chunk: bytes) -> list[str]:
    """Split a chunk into lines; bytes that are not UTF-8 become \\xHH (nginx's own notation)."""
    text = chunk.decode("utf-8", errors="backslashreplace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


__all__ = [
    "POLARS_REFUSED", "REJECTS", "ChunkResult", "decode_lines", "empty_rejects", "empty_result", "long_line_rejects",
    "make_reader", "native_lines", "polars_lines",
]
