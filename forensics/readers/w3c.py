"""Reader for the W3C extended family: columns named by `#Fields:` directives (IIS, CloudFront).

Spec: https://www.w3.org/TR/WD-logfile.html. `#Fields` may change in the middle of a file; every
data line is read with the last header above it. A file without a header is read with the
source's `fields` or the format's default field list, and the source notes that it was.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from forensics.formats import FormatDef
from forensics.normalize import to_canonical
from forensics.readers import ChunkResult, decode_lines, empty_rejects, empty_result, native_lines
from forensics.schema import empty_requests_frame

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# A space-separated W3C value: a double-quoted string ("" inside) or a run of non-blanks.
_SPACED = re.compile(r'"(?:[^"]|"")*"|[^ \t]+')
# Header field names the reader cannot use as column names: its own working columns (`_line`,
# `_ts` ...) and canonical columns it fills itself. A field so named is kept as `w3c.<name>`.
_RESERVED = {"ts", "line_no", "source_id", "extra", "missing_fields"}
# The characters Python's str.isspace() calls whitespace (what the exact path's blank-line test,
# `not line.strip()`, strips), as a regex class: the Unicode White_Space characters and the
# separators U+001C-U+001F. A test checks it against str.isspace() over every code point.
PY_WHITESPACE = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_BLANK = f"[^{PY_WHITESPACE}]"


def _offset_zone(value: str) -> str | None:
    """The IANA zone for a #GMT-Offset of whole hours (Etc/GMT+8 is UTC-8: the sign is
    inverted), or None when the value is not such an offset (+05:30, +99:00, junk)."""
    m = _OFFSET.match(value)
    if not m or m.group(3) != "00":
        return None
    hours = int(m.group(2))
    if hours == 0:
        return "UTC"
    name = f"Etc/GMT{'+' if m.group(1) == '-' else '-'}{hours}"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _chunk_result(parsed: list[pl.DataFrame], rejects: list[pl.DataFrame], skipped: Counter[str]) -> ChunkResult:
    """One chunk's result from the rows and rejects of its runs, in line order."""
    return ChunkResult(
        pl.concat(parsed) if parsed else empty_requests_frame(),
        pl.concat(rejects) if rejects else empty_rejects(),
        skipped,
    )


class W3CReader:
    def __init__(self, fmt: FormatDef, source_tz: str | None, fields: str | None = None, source_id: int = 0) -> None:
        self.fmt = fmt
        self.source_tz = source_tz
        self.source_id = source_id
        self.header_fields: list[str] | None = None
        self.case_fields = bool(fields)
        self.fallback_fields = (fields or fmt.default_fields or "").split()
        self.notes: list[str] = []
        self._used_fallback = False
        # Directives that change how times read: #Date gives the day when there is no date
        # field; #GMT-Offset says the times are local at that offset (Oracle Web Cache).
        self.directive_date: str | None = None
        self.gmt_zone: str | None = None
        # A #GMT-Offset that cannot be applied: the lines under it are rejected, saying so.
        self.gmt_unusable: str | None = None
        # read_chunk's fast path (see _read_fast); off, every line takes the exact path.
        self.fast_enabled = True
        # Lines read_chunk gave to the exact path (shown as the share of slow lines).
        self.exact_lines = 0

    def _fields(self, run: list[str]) -> list[str]:
        if self.header_fields is not None:
            return self.header_fields
        if not self._used_fallback:
            self._used_fallback = True
            if self.case_fields:
                how = "the fields given in the case file"
            else:
                self.fallback_fields, how = self._headerless_fields(run)
            self.notes.append(f"no #Fields header before the first data line: read with {how}")
        return self.fallback_fields

    def _count(self, line: str) -> int:
        if self.fmt.delimiter == "\t" and "\t" in line:
            parts = line.split("\t")
            return len(parts) - (1 if parts[-1] == "" else 0)
        return len(_SPACED.findall(line))

    def _headerless_fields(self, run: list[str]) -> tuple[list[str], str]:
        """The format's default field list that reads the first lines of a file without a
        header best. A list with as many fields as the lines is tried first; failing that, a
        shorter list followed by unnamed fields (IIS appends custom fields, e.g.
        X-Forwarded-For, after the standard ones). CloudFront adds fields only at the end, so
        its default list also reads older, shorter lines."""
        default = self.fallback_fields
        options = [default, *(f.split() for f in self.fmt.headerless_fields)]
        options = [o for o in options if o]
        head = run[:50]
        if not options or not head:
            return default, "the fields of the format"
        count = max(self._count(line) for line in head)
        exact = [o for o in options if len(o) == count]
        padded = [
            [*o, *(f"x-unnamed-{i}" for i in range(1, count - len(o) + 1))]
            for o in options
            if len(o) < count
        ]
        trials = exact or padded or [default]

        def reads(fields: list[str]) -> int:
            req, _ = self._read_run(fields, list(range(len(head))), head, self.gmt_zone, self.gmt_unusable)
            return req.height

        chosen = trials[0] if len(trials) == 1 else max(trials, key=reads)
        unnamed = sum(1 for f in chosen if f.startswith("x-unnamed-"))
        how = f"the format's field list of {len(chosen) - unnamed} fields"
        if unnamed:
            how += f" and {unnamed} unnamed trailing field{'s' if unnamed > 1 else ''} (kept in extra)"
        how += "; give `fields` in the case file if the server logged others"
        return chosen, how

    def _directive(self, text: str) -> None:
        key, _, value = text[1:].partition(":")
        value = value.strip()
        if key == "Fields":
            self.header_fields = value.split()
        elif key in ("Date", "Start-Date") and _ISO_DATE.match(value):
            self.directive_date = value[:10]
        elif key == "GMT-Offset":
            zone = _offset_zone(value)
            self.gmt_zone, self.gmt_unusable = zone, None if zone else value
            if zone:
                self.notes.append(f"times read as local at #GMT-Offset {value}")
            else:
                self.notes.append(
                    f"#GMT-Offset {value!r} is not a whole-hour offset between UTC-12 and UTC+14: "
                    "the lines under it are rejected"
                )

    def finish(self) -> ChunkResult:
        """Nothing is held between chunks: every line is read in its own chunk."""
        return empty_result()

    def fork(self, chunk: bytes) -> W3CReader | None:
        """A twin that reads `chunk` as this reader would, while this one reads others; None
        when the chunk must be read by this reader in order. A chunk's rows depend on the
        directives before it (#Fields, #Date, #GMT-Offset) and, without a #Fields header, on the
        field list chosen at the first data line: a chunk without directives, once the fields
        are known, changes nothing in the reader and reads the same in a twin."""
        if self.header_fields is None and not self._used_fallback:
            return None
        # A one-byte search first: CPython looks for b"\n#" by stopping at every line feed,
        # which cost a CloudFront chunk 7 ms against 0.1 ms for b"#" (rare outside directives).
        if chunk.startswith((b"#", b"\xef\xbb\xbf")) or (b"#" in chunk and b"\n#" in chunk):
            return None
        twin = copy.copy(self)
        twin.exact_lines = 0
        return twin

    def read_chunk(self, start_line: int, chunk: bytes, n_lines: int | None = None) -> ChunkResult:
        lines = native_lines(chunk, n_lines) if self.fast_enabled else None
        if lines is None:
            decoded = decode_lines(chunk)
            self.exact_lines += len(decoded)
            return self.read_lines(start_line, decoded)
        return self._read_fast(start_line, lines)

    # -- the fast path -------------------------------------------------------------------------
    def _read_fast(self, start_line: int, lines: pl.Series) -> ChunkResult:
        """The rows read_lines gives for the same lines, without a Python step per line.

        The chunk's lines come from polars' native line reading. Directives and blank lines are
        found by column expressions and handled one by one in Python (a file has a few); the
        data lines between two directives form a run, read by _read_frame. Directives change
        the reader's state in line order and #Date applies as it stands at the chunk's end,
        as in split_runs.
        """
        frame = pl.DataFrame({"_line": lines}).with_row_index("_i")
        special = frame.filter(
            pl.col("_line").str.starts_with("#") | ~pl.col("_line").str.contains(_NOT_BLANK)
        )
        skipped: Counter[str] = Counter()
        # Each run: its fields, first and end row, its blank rows, and the #GMT-Offset over it.
        runs: list[tuple[list[str], int, int, list[int], str | None, str | None]] = []
        at, blanks = 0, list[int]()

        def close(end: int) -> None:
            if end - at > len(blanks):
                head = frame.slice(at, min(end - at, 50 + len(blanks))).get_column("_line").to_list()
                data = [t for t in head if t.strip() and not t.startswith("#")][:50]
                runs.append((self._fields(data), at, end, list(blanks), self.gmt_zone, self.gmt_unusable))

        for i, text in special.iter_rows():
            if text.startswith("#"):
                close(i)
                at, blanks = i + 1, []
                skipped["directive"] += 1
                self._directive(text)
            elif not text.strip():
                skipped["blank"] += 1
                blanks.append(i)
        close(frame.height)
        parsed: list[pl.DataFrame] = []
        rejects: list[pl.DataFrame] = []
        for fields, first, end, blank_rows, gmt_zone, gmt_unusable in runs:
            run = frame.slice(first, end - first)
            if blank_rows:
                run = run.filter(~pl.col("_i").is_in(blank_rows))
            run = run.select((pl.col("_i").cast(pl.Int64) + start_line).alias("_line_no"), pl.col("_line"))
            req, rej = self._read_frame(fields, run, gmt_zone, gmt_unusable)
            parsed.append(req)
            rejects.append(rej)
        return _chunk_result(parsed, rejects, skipped)

    def _read_frame(
        self, fields: list[str], frame: pl.DataFrame, gmt_zone: str | None, gmt_unusable: str | None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Rows and rejects of one run's data lines (columns _line_no, _line), as _read_run
        reads them. Plain lines (see _plain) are split on the delimiter; the others take the
        exact path, and the two are merged back in line order."""
        n = len(fields)
        if not fields:
            return self._read_run(fields, frame.get_column("_line_no").to_list(),
                                  frame.get_column("_line").to_list(), gmt_zone, gmt_unusable)
        plain = frame.select(self._plain(n)).to_series()
        if plain.all():
            return self._typed(fields, self._split_plain(frame, n), gmt_zone, gmt_unusable)
        others = frame.filter(~plain)
        self.exact_lines += others.height
        req_e, rej_e = self._read_run(fields, others.get_column("_line_no").to_list(),
                                      others.get_column("_line").to_list(), gmt_zone, gmt_unusable)
        if not plain.any():
            return req_e, rej_e
        req_f, rej_f = self._typed(fields, self._split_plain(frame.filter(plain), n), gmt_zone, gmt_unusable)
        return (
            pl.concat([req_f, req_e]).sort("line_no"),
            pl.concat([rej_f, rej_e]),
        )

    def _plain(self, n: int) -> pl.Expr:
        """Lines the exact path reads by splitting on the delimiter: for a tab-separated format
        any line with a tab (the exact path splits those on tabs); for a space-separated one a
        line without quotes, tabs, leading, trailing or doubled spaces and at most n fields
        (the exact path's regex then finds the same values, and it repairs only longer lines)."""
        line = pl.col("_line")
        if self.fmt.delimiter == "\t":
            return line.str.contains("\t", literal=True)
        return (
            ~line.str.contains(r'["\t]|  |^ | $')
            & (line.str.count_matches(" ", literal=True) < n)
        )

    def _split_plain(self, frame: pl.DataFrame, n: int) -> pl.DataFrame:
        """Plain lines split on the delimiter into _f0 .. _f{n-1}, with their field count; a
        tab-separated line's one trailing empty field (a trailing tab) does not count."""
        line = pl.col("_line")
        sep = self.fmt.delimiter if self.fmt.delimiter == "\t" else " "
        values = line.str.split_exact(sep, n)
        split = frame.select(
            pl.col("_line_no"),
            line,
            *(values.struct.field(f"field_{i}").alias(f"_f{i}") for i in range(n + 1)),
            _repaired=pl.lit(False),
        )
        # A line with n fields (most lines) has its n-th and no (n+1)-th: its count needs no
        # look at the line. The others are counted.
        odd = split.select(pl.col(f"_f{n - 1}").is_null() | pl.col(f"_f{n}").is_not_null()).to_series()
        count = pl.Series("_count", [n] * split.height, dtype=pl.Int64)
        if odd.any():
            idx = odd.arg_true()
            cuts = split.get_column("_line").gather(idx).str.count_matches(sep, literal=True).cast(pl.Int64)
            counted = cuts + 1
            if sep == "\t":
                ends_in_tab = split.get_column("_line").gather(idx).str.ends_with("\t")
                counted = pl.select(pl.when((cuts == n) & ends_in_tab).then(cuts).otherwise(counted)).to_series()
            count = count.scatter(idx, counted)
        return split.drop(f"_f{n}").with_columns(count)

    def read_lines(self, start_line: int, lines: list[str]) -> ChunkResult:
        runs, skipped = self.split_runs(start_line, lines)
        parsed: list[pl.DataFrame] = []
        rejects: list[pl.DataFrame] = []
        for fields, nos, run, gmt_zone, gmt_unusable in runs:
            req, rej = self._read_run(fields, nos, run, gmt_zone, gmt_unusable)
            parsed.append(req)
            rejects.append(rej)
        return _chunk_result(parsed, rejects, skipped)

    def split_runs(
        self, start_line: int, lines: list[str]
    ) -> tuple[list[tuple[list[str], list[int], list[str], str | None, str | None]], Counter[str]]:
        """The data lines of a chunk in runs that share a #Fields header and #GMT-Offset, as
        (fields, line numbers, lines, offset zone, unusable offset), and the counts of skipped
        lines; directives update the reader's state. A #Date applies to the runs of the chunk as
        it stands at the chunk's end."""
        skipped: Counter[str] = Counter()
        runs: list[tuple[list[str], list[int], list[str], str | None, str | None]] = []
        cur_nos: list[int] = []
        cur_lines: list[str] = []
        for i, line in enumerate(lines):
            text = line.rstrip("\r")
            if text.startswith("#"):
                if cur_lines:
                    runs.append((self._fields(cur_lines), cur_nos, cur_lines, self.gmt_zone, self.gmt_unusable))
                    cur_nos, cur_lines = [], []
                skipped["directive"] += 1
                self._directive(text)
                continue
            if not text.strip():
                skipped["blank"] += 1
                continue
            cur_nos.append(start_line + i)
            cur_lines.append(text)
        if cur_lines:
            runs.append((self._fields(cur_lines), cur_nos, cur_lines, self.gmt_zone, self.gmt_unusable))
        return runs, skipped

    def read_run(
        self, fields: list[str], nos: list[int], lines: list[str], gmt_zone: str | None, gmt_unusable: str | None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Rows and rejects of data lines under one #Fields header and #GMT-Offset, read with
        this reader's #Date day (runs of several files with equal fields, offset and day can be
        read in one call)."""
        return self._read_run(fields, nos, lines, gmt_zone, gmt_unusable)

    def _read_run(
        self, fields: list[str], nos: list[int], lines: list[str], gmt_zone: str | None, gmt_unusable: str | None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        frame = pl.DataFrame(
            {"_line_no": pl.Series(nos, dtype=pl.Int64), "_line": pl.Series(lines, dtype=pl.String)}
        )
        if not fields:
            return empty_requests_frame(), frame.select(
                line_no="_line_no",
                reason=pl.lit("no #Fields header and no field list for this format"),
                line="_line",
            )
        n = len(fields)
        delim = self.fmt.delimiter
        line = pl.col("_line")
        # Space-separated W3C values may be double-quoted strings with spaces inside
        # (IIS Advanced Logging, Oracle, Incapsula); runs of spaces separate one field.
        # Inside quotes a quote is doubled ("").
        elem = pl.element()
        spaced = line.str.extract_all(r'"(?:[^"]|"")*"|[^ \t]+').list.eval(
            pl.when(elem.str.starts_with('"') & elem.str.ends_with('"') & (elem.str.len_chars() >= 2))
            .then(elem.str.slice(1).str.head(-1).str.replace_all('""', '"', literal=True))
            .otherwise(elem)
        )
        if delim == "\t":
            # Some copies are space-separated; CloudFront lines may end in a trailing tab.
            parts = pl.when(line.str.contains("\t", literal=True)).then(line.str.split("\t")).otherwise(spaced)
        else:
            parts = spaced
        # A comma-separated list written with a raw space after the comma (an X-Forwarded-For
        # "a, b" in a space-separated copy) splits into one field too many: where the line has
        # more fields than the header and keeping ", " inside a value makes the count right,
        # the line is read that way and says so in extra.field_repair.
        joined = line.str.extract_all(r'"(?:[^"]|"")*"|(?:[^ \t,]+|, *)+')
        over = (parts.list.len() > n) & ~line.str.contains("\t", literal=True)
        repaired = over & (joined.list.len() == n)
        frame = frame.with_columns(
            _parts=pl.when(repaired).then(joined).otherwise(parts),
            _repaired=repaired,
        )
        frame = frame.with_columns(
            _parts=pl.when(
                (pl.col("_parts").list.len() == n + 1) & (pl.col("_parts").list.last() == "")
            )
            .then(pl.col("_parts").list.head(n))
            .otherwise(pl.col("_parts"))
        )
        n_parts = pl.col("_parts").list.len()
        frame = frame.select(
            pl.col("_line_no"),
            pl.col("_line"),
            *(pl.col("_parts").list.get(i, null_on_oob=True).alias(f"_f{i}") for i in range(n)),
            _count=n_parts,
            _repaired=pl.col("_repaired"),
        )
        return self._typed(fields, frame, gmt_zone, gmt_unusable)

    def _typed(
        self, fields: list[str], frame: pl.DataFrame, gmt_zone: str | None, gmt_unusable: str | None
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Rows and rejects from a run's lines split into fields (_f0 ..), with their field
        count (_count) and whether a raw space was repaired (_repaired)."""
        n = len(fields)
        count = pl.col("_count")
        needed = max((fields.index(f) + 1 for f in self.fmt.required if f in fields), default=1)
        # Fewer fields than the header: read if the required ones are there (older writers and
        # cut lines), noted in extra.missing_fields. More fields: the columns cannot be aligned
        # (a space inside a value of a space-separated line), so the line is rejected.
        misfit = (count < needed) | (count > n)
        bad = frame.filter(misfit).select(
            line_no="_line_no",
            reason=pl.format(
                "has {} fields where the #Fields header names {}", count, pl.lit(n)
            ),
            line="_line",
        )
        frame = frame.filter(~misfit)
        cols: dict[str, pl.Expr] = {}
        kinds: dict[str, str] = {}
        for i, name in enumerate(fields):
            spec = self.fmt.fields.get(name)
            if spec is None:
                target, kind = name, "str"
            else:
                target, _, kind = spec.partition(":")
                kind = kind or "str"
            if target in cols:
                target = name
            if (spec is None and (target.startswith("_") or target in _RESERVED)) or target in cols:
                target = f"w3c.{name}" if f"w3c.{name}" not in cols else f"w3c.{i}.{name}"
            cols[target] = pl.col(f"_f{i}")
            kinds[target] = kind
        cols["missing_fields"] = pl.when(count < n).then((pl.lit(n) - count).cast(pl.String))
        cols["field_repair"] = pl.when(pl.col("_repaired")).then(
            pl.lit("a ', '-separated list written with a raw space read as one field")
        )
        if "_date" not in cols and "_time" in cols and self.directive_date:
            cols["_date"] = pl.lit(self.directive_date)
            kinds["_date"] = "str"
        local = "_date" not in cols and "date-local" in cols and "time-local" in cols
        if local:
            cols["_date"], cols["_time"] = cols.pop("date-local"), cols.pop("time-local")
        raw = frame.select(pl.col("_line_no"), pl.col("_line"), **cols)
        zone = self.source_tz if local else gmt_zone
        canon, reasons = to_canonical(raw, kinds, self.fmt, self.source_id, self.source_tz, w3c_zone=zone)
        if local and not self.source_tz:
            why = "time is local (date-local/time-local) and the source gives no timezone"
            reasons = pl.Series([why] * raw.height, dtype=pl.String)
        elif not local and gmt_unusable is not None:
            why = (
                f"times are local at #GMT-Offset {gmt_unusable!r}, which is not a whole-hour offset "
                "between UTC-12 and UTC+14"
            )
            reasons = pl.Series([why] * raw.height, dtype=pl.String)
        failed = reasons.is_not_null()
        conv_bad = raw.filter(failed).select(
            line_no="_line_no", reason=reasons.filter(failed), line="_line"
        )
        return canon.filter(~failed), pl.concat([bad, conv_bad])
