"""Reader for the JSON family: one object per line (NDJSON: Cloudflare Logpush, Caddy, Traefik,
Google Cloud LogEntry, nginx `escape=json`), or a document that spans lines (Azure's
`{"records": [...]}`, an array of records, or pretty-printed records one after the other).

Spec: https://jsonlines.org/ and RFC 8259. Each format's `fields` maps dotted key paths
("httpRequest.requestUrl") to a canonical target and kind, as the W3C field maps do; keys with no
mapping are kept in `extra` under their dotted path. Every line is accounted for:
- one object per line: the line is a row, a reject with its reason, or skipped (blank; a record
  the format says is not an access record, e.g. Caddy's start-up messages, counted by kind:
  "non-access log line (logger tls)", "non-access log line (category ApplicationGatewayFirewallLog)");
- a document: each record's row carries the line its `{` is on; the other lines of the document
  (framing, and the rest of a record's lines) are skipped as "JSON document continuation line".

A document is recognised when the first non-blank line of the file opens a JSON value that the
line does not close. Records are taken from the document as soon as they are complete, so a
document larger than a chunk is read chunk by chunk; finish() at the end of the file reports
a document left open. A line holding several records (a one-line {"records": [...]}) gives a row
per access record, all with that line's number; the line is skipped only when every record on it
is a non-access record. Nothing in a line raises: JSON nested deeper than Python can follow is a
reject, and a lone surrogate escape (\\ud83d) is kept as its escape text.

Two paths give the same rows for one object per line. The exact path above parses each line with
`json.loads` and walks the record in Python. The fast path (`_FastLines`) parses a chunk's lines
with polars' NDJSON reader, every value read as text, and builds the same raw columns natively;
it keeps only the lines whose answer it can prove equal, and hands every other line to the exact
path (see `_FastLines` for which).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from polars._typing import PolarsDataType

from forensics.formats import FormatDef
from forensics.normalize import CANONICAL, to_canonical
from forensics.readers import POLARS_REFUSED, ChunkResult, decode_lines, empty_rejects, native_lines
from forensics.schema import empty_requests_frame

SKIP_NON_ACCESS = "non-access log line"
SKIP_CONTINUATION = "JSON document continuation line"
CUT_SHORT = "JSON document ends inside a record (file cut short?)"
NOT_JSON = "not valid JSON"

# Bytes that are not UTF-8 arrive as \xHH (decode_lines), which is not a JSON escape.
_BAD_X_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x([0-9A-Fa-f]{2})")
# nginx writes numeric variables unquoted in hand-made JSON templates: `"status": -` or
# `"upstream_status": 502, 200` / `502 : 200` are then not JSON. Quoted as logged.
_UNQUOTED = re.compile(r'(:\s*)(-|[0-9][0-9.]*(?:\s*[,:]\s*[0-9][0-9.]*)+)(\s*[,}\]])')
_RECORDS_OPEN = re.compile(r'\{\s*"(\w+)"\s*:\s*\[')
_WS = re.compile(r"[\s,]*")
_STRUCT = re.compile(r'["{}\[\]]')
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.S)


# ts_auto tells a Unix time's unit by its integer digits (up to 11 seconds, up to 14
# milliseconds, 18 or more nanoseconds) and also tries RFC 3339 and CLF on every value, which
# costs more than the rest of the typing together. A chunk whose times are all plain numbers of
# one of these classes is typed with that unit's kind, which computes the same instant (the
# same float arithmetic for seconds and milliseconds, the same integer division for whole
# nanoseconds); microseconds (15-17 digits) stay with ts_auto, which reads them as integers.
# (kind, fewest and most integer digits; nanoseconds without a fraction)
_EPOCH_DIGITS = (("ts_epoch_s", 1, 11), ("ts_epoch_ms", 12, 14), ("ts_epoch_ns", 18, 19))


def epoch_kind(times: pl.Series, nulls: tuple[str, ...]) -> str | None:
    """The epoch kind that reads every one of these ts_auto times as ts_auto does, or None."""
    values = times.drop_nulls()
    if nulls:
        values = values.filter(~values.is_in(list(nulls)))
    if values.len() == 0:
        return None
    # One pattern for all three kinds, then the number of integer digits decides among them.
    if not values.str.contains(r"^[0-9]+(?:\.[0-9]*)?$").all():
        return None
    point = values.str.find(".", literal=True)
    digits = pl.select(pl.coalesce(point, values.str.len_bytes().cast(point.dtype))).to_series()
    low, high = digits.min(), digits.max()
    for kind, lo, hi in _EPOCH_DIGITS:
        if lo <= low and high <= hi and (kind != "ts_epoch_ns" or point.null_count() == values.len()):  # type: ignore[operator]
            return kind
    return None


def _value_end(buf: str, pos: int) -> int | None:
    """Where the object or array at `pos` ends, found by counting brackets without recursion
    (for values nested deeper than the JSON parser can follow); None when it does not end."""
    depth = 0
    i = pos
    while m := _STRUCT.search(buf, i):
        i = m.end()
        if m.group() == '"':
            rest = _STRING_REST.match(buf, i)
            if rest is None:
                return None
            i = rest.end()
        elif m.group() in "{[":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                return i
    return None


@dataclass
class _Collected:
    rows: list[dict[str, str | None]] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    # Lines whose records were all skipped (non-access records): a line with several records
    # counts once, and only when none of its records is a row or a reject.
    skip_lines: dict[int, str] = field(default_factory=dict)


TOO_DEEP = "JSON nested too deep to read"
# A lone UTF-16 surrogate escape (\ud83d without its pair) decodes to a code point UTF-8 cannot
# hold; such values are kept as the escape text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        # Header values as lists (Caddy): several values of one header join as HTTP does.
        parts = [t for t in (_text(v) for v in value) if t is not None]
        return ", ".join(parts) if parts else None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _get(record: dict[str, Any], path: str) -> Any:
    if path in record:
        return record[path]
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _has(record: dict[str, Any], spec: str) -> bool:
    return any(_get(record, alt) is not None for alt in spec.split("|"))


def _flatten(value: Any, prefix: str, out: dict[str, Any], skip: set[str]) -> None:
    """The members of `value` (under the dotted name `prefix`) as dotted names: a member "a" of
    an object under the key "" is ".a", as the fast path names it, not "a" (a member of the
    record itself)."""
    if prefix in skip:
        return
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out, skip)
    else:
        out[prefix] = value


def _flatten_record(record: dict[str, Any], out: dict[str, Any], skip: set[str]) -> None:
    """The record's members as dotted names (see _flatten)."""
    if not record:
        _flatten(record, "", out, skip)
    for k, v in record.items():
        _flatten(v, str(k), out, skip)


class JsonReader:
    def __init__(self, fmt: FormatDef, source_tz: str | None, source_id: int = 0) -> None:
        self.fmt = fmt
        self.source_tz = source_tz
        self.source_id = source_id
        self.notes: list[str] = []
        self.prefix = re.compile(fmt.line_prefix) if fmt.line_prefix else None
        # target -> (kind, [paths in order of preference])
        self.targets: dict[str, tuple[str, list[str]]] = {}
        for path, spec in fmt.fields.items():
            target, _, kind = spec.partition(":")
            kind = kind or "str"
            if target in self.targets:
                self.targets[target][1].append(path)
            else:
                self.targets[target] = (kind, [path])
        self.mapped_paths = set(fmt.fields)
        self.identity = fmt.identity or fmt.required
        # None until the first line with content says whether this is NDJSON or a document.
        self.mode: str | None = None
        # document state
        self.buffer = ""
        self.buffer_line = 1  # line number of buffer[0]
        self.pos = 0  # next unread position in buffer
        self.stack: list[str] = []  # closing brackets of the containers we are inside
        self.row_lines: set[int] = set()
        self.gap_lines: set[int] = set()
        self.broken: str | None = None
        self._line_cache = (0, 1)
        # The fast path (polars) for one object per line; off, every line is read exactly.
        self.fast_enabled = True
        self.fast = _FastLines(self)
        # Lines read_chunk gave to the exact path (shown as the share of slow lines).
        self.exact_lines = 0

    # -- records ------------------------------------------------------------------------------
    def _record(self, record: Any, line_no: int, text: str, out: _Collected, repaired: str | None) -> None:
        """One record: a row, a reject or a skip; never an exception (a record nested deeper
        than Python's recursion limit is a reject)."""
        try:
            self._record_unsafe(record, line_no, text, out, repaired)
        except RecursionError:
            out.rejects.append((line_no, TOO_DEEP, text))

    def _record_unsafe(self, record: Any, line_no: int, text: str, out: _Collected, repaired: str | None) -> None:
        fmt = self.fmt
        if not isinstance(record, dict):
            out.rejects.append((line_no, "not a JSON object", text))
            return
        missing = [k for k in self.identity if not _has(record, k)]
        if missing:
            out.rejects.append((line_no, f"not a {fmt.name} record: no key {missing[0]}", text))
            return
        if fmt.access:
            found = _get(record, fmt.access["key"])
            if fmt.access.get("present"):
                is_access = found is not None
            else:
                value = _text(found) or ""
                prefixes = fmt.access.get("prefix", [])
                values = fmt.access.get("values", [])
                is_access = any(value.startswith(p) for p in prefixes) or value in values
            if not is_access:
                # Counted by kind (a WAF record, a health probe, a start-up message), so that
                # the accounting says what the file held besides requests.
                label_key = fmt.access.get("kind", fmt.access["key"])
                label = _text(_get(record, label_key)) or ""
                kind = f"{label_key} {label}" if label else f"no {label_key}"
                out.skip_lines[line_no] = f"{SKIP_NON_ACCESS} ({kind})"
                return
        missing = [k for k in fmt.required if not _has(record, k)]
        if missing:
            out.rejects.append((line_no, f"access record without {missing[0]}", text))
            return
        row: dict[str, str | None] = {"_line_no": str(line_no), "_line": text}
        nulls = set(fmt.null)
        for target, (_, paths) in self.targets.items():
            for path in paths:
                found = _text(_get(record, path))
                if found is not None and found not in nulls:
                    row[target] = found
                    break
        if "_date" in row and "_time" in row:
            # W3C-style date and time fields (CloudFront v2) are UTC; records of one file may
            # carry them or an epoch timestamp, so each row gets its own _ts.
            row["_ts"] = f"{row.pop('_date')}T{row.pop('_time')}Z"
        else:
            row.pop("_date", None)
            row.pop("_time", None)
        rest: dict[str, Any] = {}
        _flatten_record(record, rest, self.mapped_paths)
        for key, value in rest.items():
            if key in self.mapped_paths or value is None:
                continue
            clash = key in CANONICAL or key in self.targets or key.startswith("_")
            row[f"json.{key}" if clash else key] = _text(value)
        if repaired:
            row["json_repair"] = repaired
        if _SURROGATE_ESCAPE.search(text):
            row = {_clean(k) or "": _clean(v) for k, v in row.items()}
        out.rows.append(row)

    def _loads(self, text: str) -> tuple[Any, str | None]:
        """The parsed value and the repair applied, or raise ValueError with the reason."""
        try:
            return json.loads(text), None
        except RecursionError:
            raise ValueError(TOO_DEEP) from None
        except ValueError as exc:
            first = exc
        candidate, repairs = text, []
        if "\\x" in candidate:
            fixed = _BAD_X_ESCAPE.sub(r"\1\\\\x\2", candidate)
            if fixed != candidate:
                candidate = fixed
                repairs.append("bytes that are not UTF-8 kept as \\xHH text")
        if "unquoted_values" in self.fmt.repair:
            fixed = _UNQUOTED.sub(lambda m: m.group(1) + json.dumps(m.group(2)) + m.group(3), candidate)
            if fixed != candidate:
                candidate = fixed
                repairs.append("unquoted '-' or list value read as a string")
        if repairs:
            try:
                return json.loads(candidate), "; ".join(repairs)
            except (ValueError, RecursionError):
                pass
        raise ValueError(f"{NOT_JSON} ({first})") from None

    # -- one object per line ------------------------------------------------------------------
    def _strip_prefix(self, text: str) -> str:
        if self.prefix is not None and not text.startswith("{"):
            return self.prefix.sub("", text, count=1)
        return text

    def _content(self, line: str) -> str:
        """The JSON text of a line: without its CR, its prefix (a container's name, a syslog
        header) and surrounding white space."""
        return self._strip_prefix(line.rstrip("\r")).strip()

    def _line(self, line_no: int, line: str, out: _Collected) -> None:
        text = self._content(line)
        if not text:
            out.skipped["blank"] += 1
            return
        try:
            value, repaired = self._loads(text)
        except ValueError as exc:
            out.rejects.append((line_no, str(exc), line))
            return
        records = self._records_of(value)
        if records is None:
            self._record(value, line_no, line, out, repaired)
            return
        if not records:
            out.skip_lines[line_no] = "empty records document"
            return
        for record in records:
            self._record(record, line_no, line, out, repaired)

    def _records_of(self, value: Any) -> list[Any] | None:
        if isinstance(value, list):
            return value
        key = self.fmt.records_key
        if key and isinstance(value, dict) and isinstance(value.get(key), list):
            return list(value[key])
        return None

    # -- a document over several lines ----------------------------------------------------------
    def _starts_document(self, line: str) -> bool:
        text = self._strip_prefix(line.rstrip("\r")).strip()
        if not text.startswith(("{", "[")):
            return False
        try:
            json.loads(text)
        except RecursionError:
            return False
        except ValueError as exc:
            # A value the line opens and does not close: the error is at the end of the line.
            return getattr(exc, "pos", 0) >= len(text)
        return False

    def _line_of(self, pos: int) -> int:
        # Positions are asked for in increasing order: count from the last one asked.
        at, line = self._line_cache
        if pos < at:
            at, line = 0, self.buffer_line
        line += self.buffer.count("\n", at, pos)
        self._line_cache = (pos, line)
        return line

    def _document(self, start_line: int, lines: list[str], final: bool, out: _Collected) -> None:
        if not self.buffer:
            self.buffer_line = start_line
        else:
            # Lines that reading left out (over the length limit, rejected there) stand as
            # empty lines, so that line numbers stay right; they are not accounted again here.
            gap = start_line - (self.buffer_line + self.buffer.count("\n"))
            if gap > 0:
                first_gap = start_line - gap
                self.gap_lines.update(range(first_gap, start_line))
                self.buffer += "\n" * gap
        self.buffer += "".join(f"{ln}\n" for ln in lines)
        self._line_cache = (0, self.buffer_line)
        decoder = json.JSONDecoder()
        buf = self.buffer
        while self.broken is None:
            m = _WS.match(buf, self.pos)
            pos = m.end() if m else self.pos
            if pos >= len(buf):
                self.pos = pos
                break
            ch = buf[pos]
            if ch in "]}" and self.stack and self.stack[-1] == ch:
                self.stack.pop()
                self.pos = pos + 1
                continue
            if not self.stack:
                opened = _RECORDS_OPEN.match(buf, pos)
                if opened and opened.group(1) == self.fmt.records_key:
                    self.stack.extend(["}", "]"])
                    self.pos = opened.end()
                    continue
                if ch == "[":
                    self.stack.append("]")
                    self.pos = pos + 1
                    continue
            try:
                value, end = decoder.raw_decode(buf, pos)
            except RecursionError:
                # Too deep to parse: the record is rejected and reading goes on after it.
                end_deep = _value_end(buf, pos)
                if end_deep is None:
                    self.pos = pos
                    if not final:
                        break
                    self.broken = f"JSON document is not readable from line {self._line_of(pos)} ({TOO_DEEP})"
                    break
                line_no = self._line_of(pos)
                self.row_lines.add(line_no)
                out.rejects.append((line_no, TOO_DEEP, buf[pos : buf.find("\n", pos)]))
                self.pos = end_deep
                continue
            except ValueError as exc:
                incomplete = getattr(exc, "pos", 0) >= len(buf.rstrip())
                self.pos = pos
                if incomplete and not final:
                    break  # the record is not complete yet: wait for the next chunk
                self.broken = (
                    CUT_SHORT
                    if incomplete
                    else f"JSON document is not valid from line {self._line_of(pos)} ({exc})"
                )
                break
            line_no = self._line_of(pos)
            text = buf[pos:end]
            records = self._records_of(value) if not self.stack else None
            if records is None:
                self.row_lines.add(line_no)
                self._record(value, line_no, text, out, None)
            else:
                self.row_lines.add(line_no)
                for record in records:
                    self._record(record, line_no, text, out, None)
            self.pos = end
        # Account for the lines before the one holding the next unread position (all of them
        # when the document is over or broken), then drop them from the buffer.
        if final or self.broken is not None:
            upto = len(buf)
        else:
            upto = buf.rfind("\n", 0, self.pos) + 1
        done_lines = buf.count("\n", 0, upto)
        unread_from = self._line_of(self.pos) if self.pos < len(buf.rstrip()) else None
        for no in range(self.buffer_line, self.buffer_line + done_lines):
            if no in self.gap_lines:
                self.gap_lines.discard(no)
                continue
            if no in self.row_lines:
                self.row_lines.discard(no)
                continue
            if unread_from is not None and no >= unread_from and (self.broken or final):
                reason = self.broken or CUT_SHORT
                out.rejects.append((no, reason, self._buffer_line_text(no)))
            else:
                out.skipped[SKIP_CONTINUATION] += 1
        self.buffer = buf[upto:]
        self.pos -= upto
        self.buffer_line += done_lines
        if self.broken is not None:
            self.pos = 0

    def _buffer_line_text(self, no: int) -> str:
        lines = self.buffer.split("\n")
        i = no - self.buffer_line
        return lines[i] if 0 <= i < len(lines) else ""

    # -- entry points ---------------------------------------------------------------------------
    def _decide_mode(self, lines: list[str]) -> None:
        """The first line with content says whether this is NDJSON or a document."""
        if self.mode is None:
            first = next((ln for ln in lines if ln.strip()), None)
            if first is not None:
                self.mode = "document" if self._starts_document(first) else "lines"

    def _read(self, start_line: int, lines: list[str], final: bool) -> ChunkResult:
        out = _Collected()
        self._decide_mode(lines)
        if self.mode == "document":
            self._document(start_line, lines, final, out)
        else:
            for i, line in enumerate(lines):
                if self.mode is None:
                    out.skipped["blank"] += 1
                    continue
                self._line(start_line + i, line, out)
        return self._finish(out)

    def _finish(self, out: _Collected, fast: pl.DataFrame | None = None) -> ChunkResult:
        if out.skip_lines:
            used = {int(r["_line_no"] or 0) for r in out.rows} | {r[0] for r in out.rejects}
            for no, why in out.skip_lines.items():
                if no not in used:
                    out.skipped[why] += 1
        rejects = [
            pl.DataFrame(
                {
                    "line_no": pl.Series([r[0] for r in out.rejects], dtype=pl.Int64),
                    "reason": pl.Series([r[1] for r in out.rejects], dtype=pl.String),
                    "line": pl.Series([r[2] for r in out.rejects], dtype=pl.String),
                }
            )
        ] if out.rejects else []
        if not out.rows and (fast is None or fast.height == 0):
            rej = pl.concat(rejects) if rejects else empty_rejects()
            return ChunkResult(empty_requests_frame(), rej.sort("line_no"), out.skipped)
        names: dict[str, None] = {}
        for row in out.rows:
            names.update(dict.fromkeys(row))
        parts = [fast] if fast is not None and fast.height else []
        if out.rows:
            parts.append(
                pl.from_dicts(out.rows, schema=dict.fromkeys(names, pl.String)).with_columns(
                    pl.col("_line_no").cast(pl.Int64)
                )
            )
        raw = pl.concat(parts, how="diagonal") if len(parts) > 1 else parts[0]
        kinds = {t: k for t, (k, _) in self.targets.items() if t in raw.columns}
        if "_ts" in raw.columns and kinds.get("_ts", "str") == "str":
            kinds["_ts"] = "ts_auto"
        if kinds.get("_ts") == "ts_auto":
            kinds["_ts"] = epoch_kind(raw.get_column("_ts"), self.fmt.null) or "ts_auto"
        kinds.update({c: "str" for c in raw.columns if c not in kinds and not c.startswith("_")})
        canon, reasons = to_canonical(raw, kinds, self.fmt, self.source_id, self.source_tz)
        bad = reasons.is_not_null()
        if bad.any():
            rejects.append(
                raw.filter(bad).select(
                    line_no=pl.col("_line_no"), reason=reasons.filter(bad), line=pl.col("_line")
                )
            )
            canon = canon.filter(~bad)
        rej = pl.concat(rejects) if rejects else empty_rejects()
        # Rows of the fast path alone are in line order already (sorting moves every column).
        if not canon.get_column("line_no").is_sorted():
            canon = canon.sort("line_no", maintain_order=True)
        return ChunkResult(canon, rej.sort("line_no"), out.skipped)

    def fork(self, chunk: bytes) -> JsonReader | None:
        """A twin that reads `chunk` while this reader reads others, once the file is known to
        hold one object per line: a chunk's rows then depend on its lines alone (what the fast
        path has learnt of the file's keys decides only which lines it reads itself, never a
        row). None before a line with content has told lines from a document, and for a
        document, whose records run across chunks: this reader reads those chunks in order."""
        if self.mode != "lines":
            return None
        twin = copy.copy(self)
        twin.notes = []
        twin.exact_lines = 0
        twin.fast = self.fast.twin(twin)
        return twin

    def read_chunk(self, start_line: int, chunk: bytes, n_lines: int | None = None) -> ChunkResult:
        """Lines of a file in order; a JSON document still open at the end of the chunk waits
        for the next one, and finish() says what was left open when the file ends. One object
        per line takes the fast path, which leaves to the exact path the lines it cannot
        vouch for."""
        lines: list[str] | None = None
        if self.fast_enabled and self.mode is None and chunk:
            lines = decode_lines(chunk)
            self._decide_mode(lines)
        if self.fast_enabled and self.mode == "lines":
            fast = self.fast.read(start_line, chunk, n_lines)
            if fast is not None:
                raw, skipped, slow, texts = fast
                out = _Collected()
                out.skipped.update(skipped)
                for i, line in zip(slow, texts.gather(slow).to_list() if slow else [], strict=True):
                    self._line(start_line + i, line, out)
                self.exact_lines += len(slow)
                return self._finish(out, raw)
        if lines is None:
            lines = decode_lines(chunk)
        self.exact_lines += len(lines)
        return self._read(start_line, lines, final=False)

    def finish(self) -> ChunkResult:
        """The end of the file: a document still open there was cut short."""
        if self.mode != "document" or not self.buffer:
            return self._finish(_Collected())
        return self._read(self.buffer_line + self.buffer.count("\n"), [], final=True)

    def read_lines(self, start_line: int, lines: list[str]) -> ChunkResult:
        """Read lines that are the whole input (detection, tests): a document still open at the
        end is reported, line by line, as cut short."""
        return self._read(start_line, lines, final=True)


# -- the fast path ------------------------------------------------------------------------------

# A line goes to the exact path when its text has any of these (they may also match inside a
# string value, which only costs speed, never a difference):
# - a UTF-16 surrogate escape (\ud83d): Python keeps a lone one as its escape text, polars not;
# - an escaped or spaced quote before a colon (\": or " :): the member count below relies on
#   every key ending in an unescaped quote right before its colon;
# - a number with a fraction or an exponent in an array (after [ or a comma, which in an object
#   is always followed by a key): see _MEMBER_FLOAT for floats as member values;
# - an array holding an array or an object ([[, [{, or one after a comma, which in an object is
#   always followed by a key): the exact path writes such arrays as JSON text, and without them
#   nesting is by objects only, which the member count bounds (polars' parser overflows its
#   stack on objects a thousand deep);
# - in a line with an array, a quote before a bracket ("[): a string starting with a bracket
#   could be taken for an array where a key of list shape holds it (see _Plan);
# - in a chunk split in Python (see _split), control characters and `\x`, which is how bytes that
#   are not UTF-8 reach the exact path's text. In a chunk split natively, a control character is
#   left to polars, which refuses it wherever Python's JSON does (raw in a string, or anywhere but
#   a tab between tokens); the patterns allow a tab wherever they allow a space.
_FAST_EXCLUDE = r'\\u[dD][89a-fA-F]|\\"[ \t]*:|"[ \t]+:|[\[,][ \t]*(?:[\[{]|-?[0-9]+[.eE])'
# A float as a member value: polars writes it in the shortest digits that read back, always
# without an exponent and without ".0" (1.0 -> "1", 1e20 -> "100000000000000000000"), where
# Python's repr adds ".0" to a whole number and uses an exponent below 1e-4 and from 1e16 on.
# Lines with such members are kept when each one (counted here) is found after its key name
# (`"name"` right after a `{` or a comma: an escaped quote before the name would be part of a
# longer key), the name written without escapes and one key of the schema (_float_names): its
# value is then written as repr writes it, or the line is read exactly when repr would use an
# exponent. (Text like this inside a string only costs speed: its count does not match.)
_MEMBER_FLOAT = r":[ \t]*-?[0-9]+(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)[ \t]*[,}]"
_FAST_EXCLUDE_DIRTY = r"[\x00-\x1f]|\\x"
# Deeper structures are left to the exact path (Python's recursion limit decides there), and
# so are lines with more members than this, which might nest deeper than polars can follow.
_MAX_DEPTH = 16
_MAX_MEMBERS = 256
# Keys the fast path follows at most; records with more distinct keys are read exactly.
_MAX_NODES = 400
# When polars refuses a chunk, the lines Python's JSON refuses too are left to the exact path
# (which rejects or repairs them) and the others are parsed again; a block polars still refuses
# is halved until the line is found (then read exactly), at most _MAX_SPLITS times per chunk.
_MAX_SPLITS = 48


def _text_dtype(dtype: PolarsDataType, depth: int = 1) -> pl.DataType | None:
    """The dtype that reads a value as the exact path's text: objects stay structs (walked key by
    key), arrays become lists of strings (joined as _text joins them), anything else a string."""
    if isinstance(dtype, pl.Struct):
        if depth >= _MAX_DEPTH:
            return None
        fields = {}
        for f in dtype.fields:
            sub = _text_dtype(f.dtype, depth + 1)
            if sub is not None:
                fields[f.name] = sub
        return pl.Struct(fields)
    if isinstance(dtype, pl.List | pl.Array):
        return pl.List(pl.String)
    return pl.String()


def _read_dtype(dtype: PolarsDataType) -> PolarsDataType:
    """What polars is asked to read: the schema with arrays read as their JSON text."""
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: _read_dtype(f.dtype) for f in dtype.fields})
    if isinstance(dtype, pl.List):
        return pl.String()
    return dtype


# polars' JSON text of an array of strings that need no escape: ["a", "b"] (or []).
_PLAIN_STRINGS = r'^\[(?:"[^"\\]*"(?:, "[^"\\]*")*)?\]$'


def _merge_dtype(old: PolarsDataType, new: PolarsDataType) -> PolarsDataType:
    """`old` with the keys of `new` it lacks (a key whose shape differs keeps the old shape: lines
    that do not fit it fail to parse or to count, and are read exactly)."""
    if isinstance(old, pl.Struct) and isinstance(new, pl.Struct):
        fields = {f.name: f.dtype for f in old.fields}
        for f in new.fields:
            fields[f.name] = _merge_dtype(fields[f.name], f.dtype) if f.name in fields else f.dtype
        return pl.Struct(fields)
    return old


@dataclass
class _Node:
    path: tuple[str, ...]
    dtype: PolarsDataType
    expr: pl.Expr

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def is_struct(self) -> bool:
        return isinstance(self.dtype, pl.Struct)

    def text(self) -> pl.Expr:
        """The exact path's _text of the value (structs are never asked, nor arrays that are not
        of plain strings: see `_Plan`): an array's strings joined by ", ", None when empty."""
        if isinstance(self.dtype, pl.List):
            inner = self.expr.str.strip_prefix('["').str.strip_suffix('"]')
            return pl.when(self.expr != "[]").then(inner.str.replace_all('", "', ", ", literal=True))
        return self.expr


# Parsed top-level keys are columns named with this prefix (the line's own columns have none).
_KEY = "key:"


def _nodes(dtype: pl.Struct, prefix: tuple[str, ...], parent: pl.Expr | None) -> list[_Node]:
    out: list[_Node] = []
    for f in dtype.fields:
        expr = pl.col(_KEY + f.name) if parent is None else parent.struct.field(f.name)
        node = _Node((*prefix, f.name), f.dtype, expr)
        out.append(node)
        if isinstance(f.dtype, pl.Struct):
            out.extend(_nodes(f.dtype, node.path, expr))
    return out


class _Plan:
    """For one schema: the expressions that turn parsed lines into the exact path's raw columns,
    and the checks a row must pass to be kept (any row that fails is read exactly)."""

    def __init__(self, reader: JsonReader, schema: pl.Struct, floats: tuple[str, ...], arrays: bool) -> None:
        """`floats`: the key names whose float members the chunk's lines were searched for (the
        line's column `_fl{i}` says whether name i holds one); `arrays`: whether any line of the
        chunk has an array (without one, the checks on arrays are left out)."""
        fmt = reader.fmt
        self.schema = schema
        nodes = _nodes(schema, (), None)
        float_column = {name: f"_fl{i}" for i, name in enumerate(floats)}
        texts: dict[str, pl.Expr] = {}
        by_path = {n.dotted: n for n in nodes}
        present = {n.dotted: n.expr.is_not_null() for n in nodes}
        never = pl.lit(False)
        slow: list[pl.Expr] = []

        def value(path: str) -> _Node | None:
            return by_path.get(path)

        def has(spec: str) -> pl.Expr:
            found = [present[alt] for alt in spec.split("|") if alt in present]
            return pl.any_horizontal(found) if found else never

        def leaf_text(node: _Node) -> pl.Expr:
            if node.dotted not in texts:
                texts[node.dotted] = node.text()
                if node.path[-1] in float_column and not isinstance(node.dtype, pl.List):
                    # A float member of this name in the line (see _MEMBER_FLOAT and _float_names:
                    # the name is one key of the schema, so the member is this node's).
                    raw = node.expr
                    is_float = pl.col(float_column[node.path[-1]])
                    fixed = raw.str.contains(r"^-?[0-9]{1,16}(?:\.[0-9]+)?$") & ~raw.str.contains(r"^-?0\.0000")
                    slow.append(is_float & ~fixed.fill_null(False))
                    repr_text = pl.when(raw.str.contains(".", literal=True)).then(raw).otherwise(raw + ".0")
                    texts[node.dotted] = pl.when(is_float).then(repr_text).otherwise(raw)
            return texts[node.dotted]

        def text(path: str) -> pl.Expr:
            node = value(path)
            if node is None:
                return pl.lit(None, pl.String)
            if node.is_struct:
                # The exact path writes an object found at a mapped key as JSON text.
                slow.append(present[path])
                return pl.lit(None, pl.String)
            return leaf_text(node)

        # Each key counts once when present: the line's members (its `":`) must all be seen.
        self.members = pl.sum_horizontal(p.cast(pl.UInt32) for p in present.values()) if nodes else pl.lit(0)
        if arrays:
            # The line's arrays (its colons before a bracket, `_na`; see _FastLines.read) must all
            # be read by keys of list shape: an array read into a string-typed key comes back as
            # polars' JSON text of it (an object too, but its members fail the count, and "{}"
            # is the exact path's text of an empty one). A key of list shape holding something
            # else is not an array's text: no string of the line starts with a bracket (see
            # _FAST_EXCLUDE), and other values fail _PLAIN_STRINGS.
            lists = [present[n.dotted].cast(pl.UInt32) for n in nodes if isinstance(n.dtype, pl.List)]
            slow.append(pl.col("_na") != (pl.sum_horizontal(lists) if lists else pl.lit(0, pl.UInt32)))
        for n in nodes:
            if "." in n.path[-1]:
                # A dotted key reads differently through _get's literal lookup.
                slow.append(present[n.dotted])
            if n.is_struct:
                # An empty object is written "{}" by the exact path, and one whose keys are all
                # unknown here does not count right.
                kids = [present[c.dotted] for c in nodes if c.path[:-1] == n.path]
                slow.append(present[n.dotted] & ~pl.any_horizontal(kids) if kids else present[n.dotted])
            elif arrays and isinstance(n.dtype, pl.List):
                # Arrays are read as polars' JSON text of them (reading them as lists costs polars
                # several times the rest of the line); an array of plain strings (no escape
                # left, so none holds a quote) is joined here, any other is read exactly. (No
                # line of the chunk has an array when `arrays` is false: list keys are null.)
                slow.append(n.expr.is_not_null() & ~n.expr.str.contains(_PLAIN_STRINGS))

        self.identity = pl.all_horizontal([has(k) for k in reader.identity]) if reader.identity else pl.lit(True)
        self.required = pl.all_horizontal([has(k) for k in fmt.required]) if fmt.required else pl.lit(True)
        self.access: pl.Expr = pl.lit(True)
        self.label: pl.Expr | None = None
        if fmt.access:
            key = fmt.access["key"]
            if fmt.access.get("present"):
                self.access = has(key)
            else:
                found = text(key).fill_null("")
                is_access = pl.lit(False)
                for p in fmt.access.get("prefix", []):
                    is_access = is_access | found.str.starts_with(p)
                if fmt.access.get("values"):
                    is_access = is_access | found.is_in(list(fmt.access["values"]))
                self.access = is_access
            label_key = fmt.access.get("kind", key)
            label = text(label_key).fill_null("")
            self.label = (
                pl.when(label != "")
                .then(pl.concat_str(pl.lit(f"{SKIP_NON_ACCESS} ({label_key} "), label, pl.lit(")")))
                .otherwise(pl.lit(f"{SKIP_NON_ACCESS} (no {label_key})"))
            )

        nulls = list(fmt.null)
        columns: dict[str, pl.Expr] = {}
        for target, (_, paths) in reader.targets.items():
            options = []
            for path in paths:
                t = text(path)
                options.append(pl.when(t.is_not_null() & ~t.is_in(nulls)).then(t) if nulls else t)
            columns[target] = pl.coalesce(options) if len(options) > 1 else options[0]
        if "_date" in columns and "_time" in columns:
            both = columns["_date"].is_not_null() & columns["_time"].is_not_null()
            stamp = pl.concat_str(columns["_date"], pl.lit("T"), columns["_time"], pl.lit("Z"))
            columns["_ts"] = pl.when(both).then(stamp).otherwise(columns.get("_ts", pl.lit(None, pl.String)))
        columns.pop("_date", None)
        columns.pop("_time", None)
        # Every key not under a mapped key goes to extra under its dotted path, as _flatten does.
        mapped = reader.mapped_paths
        names_out: dict[str, _Node] = {}
        for n in nodes:
            if n.is_struct or any(".".join(n.path[:i]) in mapped for i in range(1, len(n.path) + 1)):
                continue
            key = n.dotted
            clash = key in CANONICAL or key in reader.targets or key.startswith("_")
            name = f"json.{key}" if clash else key
            if name in names_out or name in columns:
                # Two keys that end in one column: the exact path keeps the last one written.
                slow.append(present[key] | present[names_out[name].dotted] if name in names_out else present[key])
                continue
            names_out[name] = n
            columns[name] = leaf_text(n)
        self.columns = columns
        self.slow = pl.any_horizontal(slow) if slow else never


class _FastLines:
    """Reads a chunk of one-object-per-line JSON with polars, for the lines whose rows it can
    prove equal to the exact path's; the others are returned by index for the exact path.

    The proof, per line: its text is free of everything the `_FAST_EXCLUDE` patterns name; it is
    one object (`{` to `}`), parsed by polars with every scalar read as text (strings as
    decoded, integers in full, true/false, which is what the exact path's _text makes of them);
    every member the line has (counted as `":`) is a key of the schema that polars filled with a
    value (so no key is dropped, and a null member or a duplicate key, which polars resolves to
    the first and Python to the last, fails the count); every float member is found under a key
    name the schema has once (_float_names); no array holds arrays or objects; identity and
    required keys are present. Lines of a block polars refuses (invalid JSON, NaN, another shape
    for a known key) are found by halving the block and read exactly.
    """

    def __init__(self, reader: JsonReader) -> None:
        self.reader = reader
        self.schema: pl.Struct | None = None
        # Key names polars ever read a float under (whose float members are then looked for).
        self.float_seen: set[str] = set()
        # The plans of this schema, by (float key names searched, whether arrays were seen).
        self.plans: dict[tuple[tuple[str, ...], bool], _Plan] = {}
        # A twin reading chunks beside this reader (JsonReader.fork) hands back what it learnt,
        # so that later twins start from it; the lock guards that.
        self.parent: _FastLines | None = None
        self.lock = threading.Lock()

    def twin(self, reader: JsonReader) -> _FastLines:
        """A copy for a twin reader, starting from what this one (and its twins) learnt."""
        with self.lock:
            other = copy.copy(self)
            other.float_seen = set(self.float_seen)
            other.plans = dict(self.plans)
        other.reader = reader
        other.parent = self
        other.lock = threading.Lock()
        return other

    def _learn(self, schema: pl.Struct, float_seen: set[str]) -> None:
        """Take in what a twin learnt (keys the schema lacks, names holding floats)."""
        with self.lock:
            merged = schema if self.schema is None else _merge_dtype(self.schema, schema)
            if isinstance(merged, pl.Struct) and merged != self.schema:
                if len(_nodes(merged, (), None)) <= _MAX_NODES:
                    self.schema = merged
                    self.plans = {}
            self.float_seen |= float_seen

    def _grow(self, texts: pl.Series) -> bool:
        """Add the keys of these lines to the schema (and the names of keys holding floats to
        float_seen); False when nothing new was learnt. As in `_parse`, when polars refuses a
        line, only the lines Python's JSON reads are learnt from, and a block polars still
        refuses is halved."""
        merged: PolarsDataType | None = self.schema
        schemas = []
        todo: list[tuple[int, int]] = []
        try:
            schemas.append(pl.read_ndjson(_joined(texts), infer_schema_length=None).schema)
        except POLARS_REFUSED:
            texts = texts.filter(pl.Series([_is_json(t) for t in texts.to_list()], dtype=pl.Boolean))
            todo = [(0, texts.len())] if texts.len() else []
        splits = 0
        while todo:
            lo, hi = todo.pop()
            try:
                schemas.append(pl.read_ndjson(_joined(texts.slice(lo, hi - lo)), infer_schema_length=None).schema)
            except POLARS_REFUSED:
                if hi - lo > 1 and splits < _MAX_SPLITS:
                    splits += 1
                    mid = (lo + hi) // 2
                    todo += [(mid, hi), (lo, mid)]
        floats_before = len(self.float_seen)
        for inferred in schemas:
            self.float_seen.update(_float_keys(pl.Struct(inferred)))
            new = _text_dtype(pl.Struct(inferred))
            if isinstance(new, pl.Struct):
                merged = new if merged is None else _merge_dtype(merged, new)
        if not isinstance(merged, pl.Struct):
            return False
        if len(_nodes(merged, (), None)) > _MAX_NODES:  # type: ignore[arg-type]
            return False
        if merged == self.schema and len(self.float_seen) == floats_before:
            return False
        if merged != self.schema:
            self.schema = merged  # type: ignore[assignment]
            self.plans = {}
        return True

    def _float_names(self) -> tuple[str, ...]:
        """The key names whose float members a line may have: those polars has read a float
        under, that name one key of the schema (so the member found by name is that key's),
        written without an escape (so the name's text in the line is the name)."""
        assert self.schema is not None
        nodes = _nodes(self.schema, (), None)
        names = Counter(n.path[-1] for n in nodes)
        return tuple(sorted(
            n.path[-1] for n in nodes
            if n.path[-1] in self.float_seen and names[n.path[-1]] == 1 and not n.is_struct
            and not isinstance(n.dtype, pl.List) and _PLAIN_KEY.match(n.path[-1])
        ))

    def _plan(self, floats: tuple[str, ...], arrays: bool) -> _Plan:
        assert self.schema is not None
        key = (floats, arrays)
        if key not in self.plans:
            self.plans[key] = _Plan(self.reader, self.schema, floats, arrays)
        return self.plans[key]

    def _parse(
        self, texts: pl.Series, whole: bytes | None
    ) -> tuple[list[tuple[list[int] | None, pl.DataFrame]], list[int]]:
        """Parsed blocks (the indexes of their lines, None for all lines; and the frame) and the
        indexes of the lines polars refused."""
        assert self.schema is not None
        fields = {f.name: _read_dtype(f.dtype) for f in self.schema.fields}
        whole_frame = _read_block(whole if whole is not None else _joined(texts), fields, texts.len())
        if whole_frame is not None:
            return [(None, whole_frame)], []
        lines = texts.to_list()
        valid = [i for i, text in enumerate(lines) if _is_json(text)]
        refused = sorted(set(range(len(lines))).difference(valid))
        parsed: list[tuple[list[int] | None, pl.DataFrame]] = []
        todo = [(0, len(valid))]
        splits = 0
        while todo:
            lo, hi = todo.pop()
            frame = _read_block(_joined(texts.gather(valid[lo:hi])), fields, hi - lo) if hi > lo else None
            if frame is not None:
                parsed.append((valid[lo:hi], frame))
            elif hi - lo <= 1 or splits >= _MAX_SPLITS:
                refused.extend(valid[lo:hi])
            else:
                splits += 1
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
        return parsed, sorted(refused)

    def _rows(
        self, cand: pl.DataFrame, whole: bytes | None
    ) -> tuple[list[pl.DataFrame], Counter[str], list[int], list[int]]:
        """Of these candidate lines (`_i`, `l` parsed, `_line`, `_n`, `_f`, `_na`): raw frames of the rows kept,
        skipped counts of the non-access records kept, the indexes left to the exact path, and
        the indexes whose member or float count did not match (keys the schema lacks, duplicate
        keys, floats under a key not searched)."""
        assert self.schema is not None
        floats = self._float_names() if cand.get_column("_f").sum() else ()
        if floats:
            float_flags = {
                f"_fl{i}": pl.col("l").str.contains(r"[{,][ \t]*" + _json_name(name) + r"[ \t]*" + _MEMBER_FLOAT)
                for i, name in enumerate(floats)
            }
            cand = cand.with_columns(**float_flags)
            floats_found = pl.sum_horizontal(pl.col(c).cast(pl.UInt32) for c in float_flags)
        else:
            floats_found = pl.lit(0, pl.UInt32)
        plan = self._plan(floats, bool(cand.get_column("_na").sum()))
        parsed, refused = self._parse(cand.get_column("l"), whole)
        slow = cand.get_column("_i").gather(refused).to_list() if refused else []
        frames: list[pl.DataFrame] = []
        skipped: Counter[str] = Counter()
        unknown: list[int] = []
        # What becomes of each line: a row, a skipped non-access record, the exact path, or
        # (counts that do not match) the exact path after the schema has learnt its keys.
        row, skip, exact, recount = 0, 1, 2, 3
        for positions, frame in parsed:
            part = cand if positions is None else cand[positions]
            # The parsed keys are renamed (see _nodes), so that no key of a record can be taken
            # for one of the line's own columns.
            ev = frame.select(pl.all().name.prefix(_KEY)).with_columns(
                **{c: part.get_column(c) for c in part.columns if c != "l"}
            ).select(
                pl.col("_i"),
                pl.col("_line"),
                _what=pl.when((pl.col("_n") != plan.members) | (pl.col("_f") != floats_found)).then(recount)
                .when(plan.slow | ~plan.identity).then(exact)
                .when(~plan.access).then(skip)
                .when(~plan.required).then(exact)
                .otherwise(row),
                _label=plan.label if plan.label is not None else pl.lit(None, pl.String),
                **plan.columns,
            )
            what = ev.get_column("_what")
            if (what == row).all():
                frames.append(ev.drop("_what", "_label"))
                continue
            others = ev.select("_i", "_what", "_label").filter(pl.col("_what") != row)
            unknown += others.filter(pl.col("_what") == recount).get_column("_i").to_list()
            slow += others.filter(pl.col("_what") == exact).get_column("_i").to_list()
            for label, count in others.filter(pl.col("_what") == skip).get_column("_label").value_counts().rows():
                skipped[label] += count
            frames.append(ev.filter(what == row).drop("_what", "_label"))
        return frames, skipped, slow, unknown

    def read(
        self, start_line: int, chunk: bytes, n_lines: int | None = None
    ) -> tuple[pl.DataFrame | None, Counter[str], list[int], pl.Series] | None:
        """Raw rows of the lines read here (as `_finish` takes them, with `_line_no`), skipped
        counts, the chunk indexes of the lines left to the exact path and the chunk's lines
        (`n_lines` of them, counted when not given); None when no line of the chunk is for this
        path."""
        texts, clean = _split(chunk, n_lines)
        n_lines = texts.len()
        fmt = self.reader.fmt
        # What is parsed of each line: the line, or for a line not starting with a brace in a
        # format whose lines may carry a prefix, its JSON text as the exact path takes it.
        content = texts
        if self.reader.prefix is not None:
            bare = ~texts.str.starts_with("{")
            if bare.any():
                idx = bare.arg_true()
                content = texts.clone().scatter(idx, [self.reader._content(t) for t in texts.gather(idx).to_list()])
        line = pl.col("l")
        lines = content.to_frame("l").with_row_index("_i").with_columns(
            _line=texts,
            _c=line.str.starts_with("{") & line.str.ends_with("}"),
            # Only a line with a backslash, a bracket or a space or tab before a colon can
            # match _FAST_EXCLUDE outside a string (a comma outside a string and an array is
            # followed by a key): the patterns are run on those lines alone.
            _x=pl.any_horizontal(line.str.contains(t, literal=True) for t in ("\\", "[", '" ', '"\t')),
            _n=line.str.count_matches('":', literal=True),
            _f=line.str.count_matches(_MEMBER_FLOAT),
        )
        marked = lines.filter(pl.col("_c") & pl.col("_x"))
        if marked.height:
            # The line's arrays, `_na`: each is a member's value (arrays in arrays are excluded),
            # so it follows a colon; a line without a bracket has none.
            arrays = line.str.count_matches(r":[ \t]*\[")
            flags = marked.select(
                "_i",
                _ex=line.str.contains(_FAST_EXCLUDE) | ((arrays > 0) & line.str.contains('"[', literal=True)),
                _na=arrays,
            )
            if marked.height == n_lines:
                lines = lines.with_columns(flags.select("_ex", "_na"))
            else:
                idx = flags.get_column("_i")
                lines = lines.with_columns(
                    _ex=pl.repeat(False, n_lines, eager=True).scatter(idx, flags.get_column("_ex")),
                    _na=pl.repeat(0, n_lines, dtype=pl.UInt32, eager=True).scatter(idx, flags.get_column("_na")),
                )
            candidate = pl.col("_c") & ~pl.col("_ex")
        else:
            lines = lines.with_columns(_na=pl.lit(0, pl.UInt32))
            candidate = pl.col("_c")
        if not clean:
            candidate = candidate & ~line.str.contains(_FAST_EXCLUDE_DIRTY)
        if fmt.records_key:
            candidate = candidate & ~line.str.contains(f'"{fmt.records_key}"', literal=True)
        candidate = candidate & (pl.col("_n") <= _MAX_MEMBERS)
        cand = lines.filter(candidate.fill_null(False)).select("_i", "l", "_line", "_n", "_f", "_na")
        if cand.height == 0:
            return None
        if self.schema is None and not self._grow(cand.get_column("l").head(1000)):
            return None
        whole = chunk if cand.height == n_lines and chunk.endswith(b"\n") and content is texts else None
        frames, skipped, slow, unknown = self._rows(cand, whole)
        if unknown:
            again = cand.filter(pl.col("_i").is_in(unknown))
            if self._grow(again.get_column("l")):
                if self.parent is not None and self.schema is not None:
                    self.parent._learn(self.schema, self.float_seen)
                # Lines with keys (or floats under keys) the schema did not have: read again
                # with those added.
                more, more_skipped, more_slow, unknown = self._rows(again, None)
                frames += more
                skipped.update(more_skipped)
                slow += more_slow
            slow += unknown
        not_cand = lines.filter(~candidate.fill_null(False)).get_column("_i") if cand.height < n_lines else None
        slow_all = sorted(set(slow).union(not_cand.to_list() if not_cand is not None else ()))
        raw = pl.concat(frames, how="diagonal") if len(frames) > 1 else frames[0] if frames else None
        rows = raw.height if raw is not None else 0
        if rows + sum(skipped.values()) + len(slow_all) != n_lines:
            return None  # not every line accounted for once: the exact path reads the chunk
        if raw is not None:
            # Keys no row of this chunk has are left out, as the exact path leaves them out.
            kept = [c for c in raw.columns if c != "_i" and (c == "_line" or raw.get_column(c).null_count() < rows)]
            raw = raw.select((pl.col("_i").cast(pl.Int64) + start_line).alias("_line_no"), *kept)
        return raw, skipped, slow_all, texts


def _float_keys(dtype: PolarsDataType) -> set[str]:
    """The names of the keys polars inferred a float for, at any depth."""
    names: set[str] = set()
    if isinstance(dtype, pl.Struct):
        for f in dtype.fields:
            names |= {f.name} if f.dtype == pl.Float64 else _float_keys(f.dtype)
    return names


# A key name whose text in a line is the name itself (no escape) and that a pattern can name.
_PLAIN_KEY = re.compile(r'^[^"\\\x00-\x1f]+$')


def _json_name(name: str) -> str:
    """A pattern for the key `name` as written in a line: `"name"`."""
    return '"' + pl.escape_regex(name) + '"'


def _read_block(block: bytes, fields: dict[str, PolarsDataType], n_lines: int) -> pl.DataFrame | None:
    """The lines parsed by polars with the schema, or None when it refuses one of them."""
    if not fields:
        return None
    try:
        frame = pl.read_ndjson(block, schema=fields)
    except POLARS_REFUSED:
        return None
    return frame if frame.height == n_lines else None


# Python reads NaN and Infinity, polars does not.
_NAN = re.compile(r":[ \t]*-?(?:NaN|Infinity)")


def _is_json(text: str) -> bool:
    """Whether Python's JSON reads the line, and polars can (no NaN or Infinity)."""
    if _NAN.search(text):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _joined(texts: pl.Series) -> bytes:
    return "\n".join(texts.to_list()).encode("utf-8")


def _split(chunk: bytes, n_lines: int | None = None) -> tuple[pl.Series, bool]:
    """The chunk's lines as decode_lines gives them, and whether they were split natively, which
    is done for UTF-8 (native_lines gives None for other bytes, which polars refuses) without a
    CR (native_lines removes one before a newline, the exact path keeps it in a rejected line's
    text), and kept only when the lines' bytes and newlines add up to the chunk's bytes (no line
    lost, merged or trimmed)."""
    if b"\r" not in chunk:
        lines = native_lines(chunk, n_lines)
        newline_ended = chunk.endswith(b"\n")
        if lines is not None and lines.str.len_bytes().sum() + lines.len() - (not newline_ended) == len(chunk):
            return lines, True
    return pl.Series("l", decode_lines(chunk), dtype=pl.String), False
