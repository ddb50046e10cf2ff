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
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from forensics.formats import FormatDef
from forensics.normalize import CANONICAL, to_canonical
from forensics.readers import ChunkResult, decode_lines, empty_rejects
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
    if prefix in skip:
        return
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, skip)
    else:
        out[prefix] = value


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
        _flatten(record, "", rest, self.mapped_paths)
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

    def _line(self, line_no: int, line: str, out: _Collected) -> None:
        text = self._strip_prefix(line.rstrip("\r")).strip()
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
    def _read(self, start_line: int, lines: list[str], final: bool) -> ChunkResult:
        out = _Collected()
        if self.mode is None:
            first = next((ln for ln in lines if ln.strip()), None)
            if first is not None:
                self.mode = "document" if self._starts_document(first) else "lines"
        if self.mode == "document":
            self._document(start_line, lines, final, out)
        else:
            for i, line in enumerate(lines):
                if self.mode is None:
                    out.skipped["blank"] += 1
                    continue
                self._line(start_line + i, line, out)
        return self._finish(out)

    def _finish(self, out: _Collected) -> ChunkResult:
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
        if not out.rows:
            rej = pl.concat(rejects) if rejects else empty_rejects()
            return ChunkResult(empty_requests_frame(), rej.sort("line_no"), out.skipped)
        names: dict[str, None] = {}
        for row in out.rows:
            names.update(dict.fromkeys(row))
        raw = pl.from_dicts(out.rows, schema=dict.fromkeys(names, pl.String)).with_columns(
            pl.col("_line_no").cast(pl.Int64)
        )
        kinds = {t: k for t, (k, _) in self.targets.items() if t in raw.columns}
        if "_ts" in raw.columns and kinds.get("_ts", "str") == "str":
            kinds["_ts"] = "ts_auto"
        kinds.update({c: "str" for c in raw.columns if c not in kinds and not c.startswith("_")})
        canon, reasons = to_canonical(raw, kinds, self.fmt, self.source_id, self.source_tz)
        bad = reasons.is_not_null()
        if bad.any():
            rejects.append(
                raw.filter(bad).select(
                    line_no=pl.col("_line_no"), reason=reasons.filter(bad), line=pl.col("_line")
                )
            )
        rej = pl.concat(rejects) if rejects else empty_rejects()
        return ChunkResult(canon.filter(~bad).sort("line_no", maintain_order=True), rej.sort("line_no"), out.skipped)

    def read_chunk(self, start_line: int, chunk: bytes) -> ChunkResult:
        """Lines of a file in order; a JSON document still open at the end of the chunk waits
        for the next one, and finish() says what was left open when the file ends."""
        return self._read(start_line, decode_lines(chunk), final=False)

    def finish(self) -> ChunkResult:
        """The end of the file: a document still open there was cut short."""
        if self.mode != "document" or not self.buffer:
            return self._finish(_Collected())
        return self._read(self.buffer_line + self.buffer.count("\n"), [], final=True)

    def read_lines(self, start_line: int, lines: list[str]) -> ChunkResult:
        """Read lines that are the whole input (detection, tests): a document still open at the
        end is reported, line by line, as cut short."""
        return self._read(start_line, lines, final=True)
