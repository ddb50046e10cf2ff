"""Reader for the text-line family: a layout of fields per line (NCSA/Apache/nginx and kin).

Two paths give the same rows. The fast path reads a chunk with polars' CSV reader (space
separated, double quoted) when the layout allows it; the exact path matches each line against
the layout's regular expression, trying the format's layout variants in order. Any chunk or row
the fast path cannot vouch for (escaped quotes, ragged or blank lines, values that do not
convert) is read by the exact path, which rejects what it cannot read, with the reason.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import NamedTuple

import polars as pl
import pyarrow as pa

from forensics.formats import FormatDef
from forensics.inputs import count_lines
from forensics.layouts import CompiledLayout, Directive, compile_layout
from forensics.normalize import to_canonical
from forensics.readers import (
    POLARS_REFUSED,
    ChunkResult,
    decode_lines,
    empty_rejects,
    empty_result,
    polars_lines,
)
from forensics.schema import empty_requests_frame

# A double quote that neither opens a field (after a space or at the start of a line) nor closes
# one (before a space or the end of a line): a doubled quote or a raw quote inside a value, which
# a CSV reader would silently reinterpret. Apache and nginx never write one; a chunk with one is
# read exactly.
# (Written quote-first so the scan jumps from quote to quote.) Only a doubled quote can be
# reinterpreted silently: a single stray quote makes the CSV reader fail, or stays in the value,
# where the row check catches it; so the scan runs only on chunks that contain "".
_STRAY_QUOTE = re.compile(rb'"(?<=[^ \n]")(?=[^ \r\n])')
# `b'""' in chunk` is slow where quotes are frequent (every log line has several); the regex
# engine's literal search is twice as fast. A backslash is rare, so `\"` is looked for only
# after a memchr for the backslash finds one.
_DOUBLED_QUOTE = re.compile(rb'""')
# The CSV reader drops a CR that is not part of a CRLF line end, where the exact path sees it.
_LONE_CR = re.compile(rb"\r(?!\n)")
# Whitespace other than the space and a CRLF line end (tab, vertical tab, form feed, a CR inside
# a line, and the Unicode spaces and line separators, in UTF-8): the exact path's `\S+` stops at
# them where the CSV reader, which splits on spaces only, reads on. Chunks holding one get a
# per-row check, and the rows concerned take the exact path.
_OTHER_SPACE = re.compile(
    rb"[\t\v\f]|\r(?!\n)|\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80"
)
# One-byte searches are memchr-fast where the regular expression above walks every byte: it runs
# only on chunks that hold one of these bytes (a tab, or the lead byte of a Unicode space).
_SPACE_HINTS = (b"\t", b"\v", b"\f", b"\xc2", b"\xe1", b"\xe2", b"\xe3")


def _has_other_space(chunk: bytes) -> bool:
    return any(h in chunk for h in _SPACE_HINTS) and _OTHER_SPACE.search(chunk) is not None


class _Fast(NamedTuple):
    """What the fast reading gives: rows for the lines it vouches for, the chunk-relative
    indexes of the other lines (for the exact path), and the bytes of those it cut out."""

    canon: pl.DataFrame
    redo: list[int]
    cut: dict[int, bytes]


# Searched with the regular expression engine: its literal search is about three times faster
# than bytes.find for these two-byte needles.
_ESCAPED_QUOTE = re.compile(rb'\\"')
_BLANK_LINE = re.compile(rb"\n\n")


def _pattern_lines(chunk: bytes) -> list[tuple[int, int]]:
    """The byte spans (line end included) of the lines holding what makes the fast reading
    refuse a chunk and a byte search finds: an escaped quote, a quote inside a value (looked
    for beside doubled quotes, as the fast reading does), a CR inside the line, or nothing."""
    found = [m.start() for m in _ESCAPED_QUOTE.finditer(chunk)] if b"\\" in chunk else []
    # Overlapping matches: every line feed that follows one is a blank line.
    at = 0
    while (m := _BLANK_LINE.search(chunk, at)) is not None:
        found.append(m.start() + 1)
        at = m.start() + 1
    if chunk.startswith(b"\n"):
        found.append(0)
    if _DOUBLED_QUOTE.search(chunk):
        found.extend(m.start() for m in _STRAY_QUOTE.finditer(chunk))
    if b"\r" in chunk:
        found.extend(m.start() for m in _LONE_CR.finditer(chunk))
    spans: dict[int, int] = {}
    for at in sorted(found):
        # A blank line is found at its own line feed.
        begin = at if chunk[at : at + 1] == b"\n" else chunk.rfind(b"\n", 0, at) + 1
        if begin in spans:
            continue
        end = chunk.find(b"\n", begin)
        spans[begin] = len(chunk) if end == -1 else end + 1
    return sorted(spans.items())


# The control characters but the line feed, which JSON escapes: one memchr each is cheaper
# than any search for the class.
_CONTROL_BYTES = tuple(bytes([b]) for b in range(0x20) if b != 0x0A)
# The fast path's only column that can hold a quote in a row it keeps.
_MAY_HOLD_QUOTES = frozenset({"trailing"})


def _chunk_bytes(chunk: bytes) -> pl.Series:
    """The chunk's bytes as a polars UInt8 series, without a copy (through an Arrow buffer)."""
    buffer = pa.py_buffer(chunk)
    return pl.Series(pa.Array.from_buffers(pa.uint8(), len(chunk), [None, buffer]))


class _Places(NamedTuple):
    """Where a row's values put things in its line under the layout (the rebuilt line: values
    joined by single spaces, the quoted ones between quotes): the length of that line, the
    offsets of its quotes, and whether its literal words are the layout's."""

    length: pl.Series
    quotes: list[pl.Series]
    literal: pl.Series


def _places(df: pl.DataFrame, plan: list[tuple[Directive, str]]) -> _Places:
    """The places of each row of `df` (the CSV reading, one column per entry of `plan`)."""
    names = df.columns[: len(plan)]
    # Each value's width once, then running sums (an expression per place would compute the
    # widths before it again). A missing value (a line cut short) leaves its row's places null.
    widths = df.select(pl.col(names).str.len_bytes().cast(pl.Int64))
    pos = pl.Series([0] * df.height, dtype=pl.Int64)
    quotes: list[pl.Series] = []
    for i, (name, (_, role)) in enumerate(zip(names, plan, strict=True)):
        width = widths.get_column(name)
        if role == "quoted":
            quotes.append(pos + i)
            pos = pos + width
            quotes.append(pos + i + 1)
            pos = pos + 2
        else:
            pos = pos + width
    literal = [pl.col(name) == d.token for name, (d, role) in zip(names, plan, strict=True) if role == "literal"]
    lit = df.select(pl.all_horizontal(literal).fill_null(False)).to_series() if literal else (
        pl.Series([True] * df.height, dtype=pl.Boolean)
    )
    return _Places(pos + (len(plan) - 1), quotes, lit)


# Why a line is proven to be its rebuilt line (the places above) from positions alone, without
# building that line: the CSV reader reads a field that starts with a quote up to the next quote
# followed by the separator or the line end (undoing doubled quotes), and any other field up
# to the next separator as written. When the quotes of the line's first `length` bytes are
# exactly the layout's quotes at the places above, then field after field starts where the
# rebuilt line has it: a quoted one ends at the next of those quotes (there is no other), a
# bare one holds no quote and ends at a space; so the values are those bytes, and the line's
# first `length` bytes are the rebuilt line. Followed by the line end, that is the whole line;
# followed by a space, the rest is the tail after the layout.


def _proven_whole(places: _Places, data: pl.Series, n_lines: int) -> bool:
    """Whether every line of the chunk (CRLF line ends made LF, read as `data`) is its rebuilt
    line, from one look at each placed line end and quote: a line feed at every placed end
    (with the chunk's count of lines, these are all its line feeds) gives every line the
    length of its rebuilt one; a quote at every placed quote, with the chunk's count of quotes
    the layout's per line, leaves no other quote in any line."""
    if places.length.null_count() or n_lines == 0 or data.len() == 0:
        return False
    if int((data == ord('"')).sum()) != n_lines * len(places.quotes):
        return False
    ends = (places.length + 1).cum_sum()
    # The last line may lack its line feed: its placed end is then one past the chunk.
    if int(ends[-1]) != data.len() + (0 if data[-1] == ord("\n") else 1):
        return False
    at_end = ends.filter(ends <= data.len()) - 1
    if not bool((data.gather(at_end) == ord("\n")).all()):
        return False
    starts = ends - places.length - 1
    return all(bool((data.gather(starts + at) == ord('"')).all()) for at in places.quotes)


def _proven_rows(places: _Places, data: pl.Series, lines: pl.Series, trailing: bool) -> pl.DataFrame:
    """Per line (`lines` as split from `data`): `ok`, whether it is its rebuilt line, or (for
    a layout that allows one) its rebuilt line, a space and a tail that is not empty and does
    not end in a space or tab (the exact path's reading of a tail); and that `tail`."""
    last = max(data.len() - 1, 0)
    size = lines.str.len_bytes().cast(pl.Int64)
    starts = (size + 1).cum_sum() - size - 1
    length = places.length.fill_null(0)
    fits = (places.length == size).fill_null(False)
    within = (places.length <= size).fill_null(False)
    # Eager series: the checks are a few dozen vector operations, each over the chunk's rows.
    placed = within & places.literal
    for at in places.quotes:
        placed = placed & (data.gather((starts + at.fill_null(0)).clip(0, last)) == ord('"'))
    quotes = lines.str.count_matches('"', literal=True).cast(pl.Int64)
    if trailing and not fits.all():
        frame = pl.DataFrame({"line": lines, "from": length + 1, "has": within & ~fits})
        tail = frame.select(pl.when(pl.col("has")).then(pl.col("line").str.slice(pl.col("from")))).to_series()
        with_tail = (
            within
            & ~fits
            & (data.gather((starts + length).clip(0, last)) == ord(" "))
            & (tail.str.len_bytes() > 0)
            & ~tail.str.ends_with(" ")
            & ~tail.str.ends_with("\t")
        ).fill_null(False)
        tail_quotes = tail.str.count_matches('"', literal=True).cast(pl.Int64).fill_null(0)
        ok = (placed & (fits | with_tail) & (quotes - tail_quotes == len(places.quotes))).fill_null(False)
        none = pl.Series([None] * tail.len(), dtype=pl.String)
        return pl.DataFrame({"ok": ok, "tail": tail.zip_with(ok & ~fits, none)})
    ok = (placed & fits & (quotes == len(places.quotes))).fill_null(False)
    return pl.DataFrame({"ok": ok, "tail": pl.Series([None] * ok.len(), dtype=pl.String)})


class TextReader:
    def __init__(self, fmt: FormatDef, source_tz: str | None, source_id: int = 0) -> None:
        self.fmt = fmt
        self.source_tz = source_tz
        self.source_id = source_id
        self.layouts: list[CompiledLayout] = [
            compile_layout(text, fmt.dialect, trailing=fmt.trailing) for text in fmt.layouts
        ]
        # Last resort for lines whose quoted fields hold unescaped quotes; rows read this way
        # say so in extra.quote_repair.
        self.lenient_layouts = [
            compile_layout(text, fmt.dialect, trailing=fmt.trailing, lenient=True) for text in fmt.layouts
        ]
        self.fast_enabled = True
        # Lines read_chunk gave to the exact path (shown as the share of slow lines), and the
        # lines of chunks the fast path proved whole by positions alone (see _proven_whole).
        self.exact_lines = 0
        self.position_proven_lines = 0

    # -- the exact path ---------------------------------------------------------------------
    def _raw_from_groups(self, layout: CompiledLayout, frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
        groups = pl.col("_line").str.extract_groups(layout.regex)
        cols: dict[str, pl.Expr] = {}
        kinds: dict[str, str] = {}
        for i, d in enumerate(layout.group_targets, 1):
            name = d.target if d.target not in cols else d.token
            cols[name] = groups.struct.field(str(i))
            kinds[name] = d.kind
        if layout.lenient:
            cols["quote_repair"] = pl.lit("unescaped quotes inside a quoted field")
            kinds["quote_repair"] = "str"
        raw = frame.select(pl.col("_line_no"), pl.col("_line"), **cols)
        return raw, kinds

    def read_lines(self, start_line: int, lines: list[str], line_nos: list[int] | None = None) -> ChunkResult:
        skipped: Counter[str] = Counter()
        nos = line_nos if line_nos is not None else list(range(start_line, start_line + len(lines)))
        frame = pl.DataFrame(
            {"_line_no": pl.Series(nos, dtype=pl.Int64), "_line": pl.Series(lines, dtype=pl.String)}
        )
        blank = frame.filter(pl.col("_line").str.strip_chars().str.len_bytes() == 0)
        if blank.height:
            skipped["blank"] += blank.height
            frame = frame.filter(pl.col("_line").str.strip_chars().str.len_bytes() > 0)
        parsed: list[pl.DataFrame] = []
        rejects: list[pl.DataFrame] = []
        remaining = frame
        for layout in [*self.layouts, *self.lenient_layouts]:
            if remaining.height == 0:
                break
            mask = remaining.get_column("_line").str.contains(layout.regex)
            matched = remaining.filter(mask)
            remaining = remaining.filter(~mask)
            if matched.height == 0:
                continue
            raw, kinds = self._raw_from_groups(layout, matched)
            canon, reasons = to_canonical(raw, kinds, self.fmt, self.source_id, self.source_tz)
            bad = reasons.is_not_null()
            parsed.append(canon.filter(~bad))
            if bad.any():
                rejects.append(
                    matched.filter(bad).select(
                        line_no=pl.col("_line_no"),
                        reason=reasons.filter(bad),
                        line=pl.col("_line"),
                    )
                )
        if remaining.height:
            rejects.append(
                remaining.select(
                    line_no=pl.col("_line_no"),
                    reason=pl.lit(f"does not match the {self.fmt.name} layout"),
                    line=pl.col("_line"),
                )
            )
        requests = pl.concat(parsed) if parsed else empty_requests_frame()
        rej = pl.concat(rejects) if rejects else empty_rejects()
        return ChunkResult(requests.sort("line_no"), rej.sort("line_no"), skipped)

    # -- the fast path -------------------------------------------------------------------------
    def _fast(
        self, start_line: int, chunk: bytes, n_lines: int, index: pl.Series | None = None
    ) -> _Fast | None:
        """Canonical rows for the lines the CSV reading vouches for, and the chunk-relative
        indexes of the lines it does not; None when the whole chunk must take the exact path.
        `index` gives, for each line of `chunk`, its index in the chunk it was cut from (the
        lines are then numbered by it)."""
        layout = self.layouts[0]
        plan = layout.csv_plan
        if (
            plan is None
            or (b"\\" in chunk and b'\\"' in chunk)
            or (_DOUBLED_QUOTE.search(chunk) and _STRAY_QUOTE.search(chunk))
            or (b"\r" in chunk and _LONE_CR.search(chunk))
        ):
            return None
        names = [f"c{i}" for i in range(len(plan))]
        try:
            if self.fmt.trailing:
                # Fields after the layout's (kept in extra.trailing) are cut off here and
                # taken from the line itself below.
                df = pl.read_csv(
                    chunk, separator=" ", quote_char='"', has_header=False, new_columns=names,
                    schema_overrides=dict.fromkeys(names, pl.String), infer_schema=False,
                    extra_columns="ignore", truncate_ragged_lines=True,
                )
            else:
                df = pl.read_csv(
                    chunk, separator=" ", quote_char='"', has_header=False, new_columns=names,
                    schema=dict.fromkeys(names, pl.String), infer_schema=False, truncate_ragged_lines=False,
                )
        except POLARS_REFUSED:
            return None
        if df.height != n_lines:
            return None
        # A quoted field written bare, or a bare one quoted, reads the same to the CSV reader
        # but not to the exact path. So every line is proven to be the line its values make
        # under the layout (see _Places), and the others are read exactly. Counting the chunk's
        # quotes is not enough: two damaged lines whose extra and missing quotes cancel out (or
        # one line with both) would pass, and a line's row would depend on its neighbours.
        flat = chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
        data = _chunk_bytes(flat)
        places = _places(df, plan)
        proven: pl.DataFrame | None = None
        if _proven_whole(places, data, n_lines):
            self.position_proven_lines += n_lines
        else:
            lines = polars_lines(flat, n_lines)
            if lines is None:
                return None
            proven = _proven_rows(places, data, lines, self.fmt.trailing)
        cols: dict[str, pl.Expr] = {}
        kinds: dict[str, str] = {}
        if proven is None:
            df = df.with_columns(_literal=places.literal)
            ok = pl.col("_literal")
        else:
            df = df.with_columns(_proven=proven.get_column("ok"))
            ok = pl.col("_proven")
        head = None
        spaces = _has_other_space(chunk)
        for name, (d, role) in zip(names, plan, strict=True):
            c = pl.col(name)
            if spaces:
                # A quoted value may hold any whitespace; a bare one none.
                if role != "quoted":
                    ok = ok & ~c.str.contains(r"\s")
            if role == "literal":
                continue
            if role == "ts_head":
                head = c
                continue
            if role == "ts_tail":
                assert head is not None
                ok = ok & head.str.starts_with("[") & c.str.ends_with("]")
                cols["_ts"] = pl.concat_str(head.str.slice(1), c.str.head(-1), separator=" ")
                kinds["_ts"] = d.kind
                continue
            target = d.target if d.target not in cols else d.token
            cols[target] = c
            kinds[target] = d.kind
        if proven is not None and self.fmt.trailing and proven.get_column("tail").null_count() < n_lines:
            df = df.with_columns(_tail=proven.get_column("tail"))
            cols["trailing"] = pl.col("_tail")
            kinds["trailing"] = "str"
        df = df.with_row_index("_i") if index is None else df.with_columns(_i=index)
        raw = df.select(
            pl.col("_i"),
            (pl.col("_i").cast(pl.Int64) + start_line).alias("_line_no"),
            ok.alias("_ok"),
            **cols,
        )

        def vouch() -> frozenset[str] | None:
            # Every value kept is a piece of its line (or a number): in a chunk without a
            # backslash or a control character, only the tail after the layout can hold a
            # character that JSON escapes (a quote: no other value of a row kept holds one).
            plain = b"\\" not in chunk and not any(b in chunk for b in _CONTROL_BYTES)
            return _MAY_HOLD_QUOTES if plain else None

        canon, reasons = to_canonical(
            raw.drop("_i", "_ok"), kinds, self.fmt, self.source_id, self.source_tz, vouch=vouch
        )
        good = raw.get_column("_ok") & reasons.is_null()
        if good.all():
            return _Fast(canon, [], {})
        redo = raw.filter(~good).get_column("_i").to_list()
        return _Fast(canon.filter(good), redo, {})

    def _fast_without(
        self, start_line: int, chunk: bytes, n_lines: int, spans: list[tuple[int, int]]
    ) -> _Fast | None:
        """The fast reading of `chunk` without the lines at `spans` (sorted byte spans of whole
        lines, each with its line end), which are left to the exact path."""
        pieces: list[bytes] = []
        kept: list[pl.Series] = []
        cut: dict[int, bytes] = {}
        pos = line = 0
        for begin, end in spans:
            between = chunk.count(b"\n", pos, begin)
            pieces.append(chunk[pos:begin])
            kept.append(pl.int_range(line, line + between, dtype=pl.UInt32, eager=True))
            line += between
            cut[line] = chunk[begin:end].removesuffix(b"\n")
            line += 1
            pos = end
        pieces.append(chunk[pos:])
        kept.append(pl.int_range(line, n_lines, dtype=pl.UInt32, eager=True))
        fast = self._fast(start_line, b"".join(pieces), n_lines - len(cut), pl.concat(kept))
        if fast is None:
            return None
        return _Fast(fast.canon, sorted([*fast.redo, *cut]), cut)

    def _fast_without_suspects(
        self, start_line: int, chunk: bytes, n_lines: int
    ) -> _Fast | None:
        """The fast reading of a chunk it refused whole, without the lines that can make it
        refuse, which are left to the exact path with the ones the fast reading does not vouch
        for. One such line (Apache writes `\\"` for a quote a client sent) would otherwise send
        every line of its chunk to the exact path, several times slower. First the lines that a
        byte search finds (an escaped quote, a quote inside a value beside doubled quotes, a CR
        inside a line, a blank line); when that is not enough, every line's quotes are counted
        too (a quote left open, which the CSV reader carries over the line end). None when most
        lines are suspect or the rest is refused too."""
        spans = _pattern_lines(chunk)
        if spans and 2 * len(spans) <= n_lines:
            fast = self._fast_without(start_line, chunk, n_lines, spans)
            if fast is not None:
                return fast
        lines = polars_lines(chunk, n_lines)
        if lines is None:
            return None
        quotes = lines.str.count_matches('"', literal=True)
        # (The CSV reader drops the CR of a CRLF line end: a CR left is inside the line.)
        suspect = (
            lines.str.contains(r'\\"|""|\r') | (quotes % 2 == 1) | (lines.str.len_bytes() == 0)
        ).fill_null(True)
        n_suspect = int(suspect.sum())
        if n_suspect == 0 or 2 * n_suspect > n_lines:
            return None
        clean = lines.filter(~suspect)
        every = pl.int_range(0, n_lines, dtype=pl.UInt32, eager=True)
        rest = (clean.str.join("\n").item() + "\n").encode()
        fast = self._fast(start_line, rest, clean.len(), every.filter(~suspect))
        if fast is None:
            return None
        return _Fast(fast.canon, sorted([*fast.redo, *every.filter(suspect).to_list()]), {})

    def finish(self) -> ChunkResult:
        """Nothing is held between chunks: every line is read in its own chunk."""
        return empty_result()

    def fork(self, chunk: bytes) -> TextReader:
        """A twin that reads `chunk` while this reader reads others: a chunk's rows depend on
        its lines alone. The twin counts its own exact-path lines."""
        twin = copy.copy(self)
        twin.exact_lines = 0
        twin.position_proven_lines = 0
        return twin

    def read_chunk(self, start_line: int, chunk: bytes, n_lines: int | None = None) -> ChunkResult:
        """The rows, rejects and skips of a chunk of whole lines (`n_lines` of them, counted
        here when not given)."""
        if n_lines is None:
            n_lines = count_lines(chunk)
        fast = self._fast(start_line, chunk, n_lines) if self.fast_enabled else None
        if fast is None and self.fast_enabled and self.layouts[0].csv_plan is not None:
            fast = self._fast_without_suspects(start_line, chunk, n_lines)
        if fast is None:
            lines = decode_lines(chunk)
            self.exact_lines += len(lines)
            return self.read_lines(start_line, lines)
        canon, redo, cut = fast
        if not redo:
            return ChunkResult(canon, empty_rejects())
        self.exact_lines += len(redo)
        if 8 * len(redo) > n_lines:
            lines = decode_lines(chunk)
            chosen = [lines[i] for i in redo]
        else:
            # A few lines: decoded alone, as decode_lines would (a line feed is never part of a
            # UTF-8 sequence, so each line decodes the same alone as in its chunk).
            raw = cut if all(i in cut for i in redo) else dict(enumerate(chunk.split(b"\n")))
            chosen = [raw[i].decode("utf-8", errors="backslashreplace") for i in redo]
        exact = self.read_lines(start_line, chosen, [start_line + i for i in redo])
        merged = pl.concat([canon, exact.requests]).sort("line_no")
        return ChunkResult(merged, exact.rejects, exact.skipped)
