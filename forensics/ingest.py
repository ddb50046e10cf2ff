"""Loading a case's log files into the case database, with provenance and a full accounting.

For every file: lines_read = lines_parsed + lines_rejected + lines_skipped, where rejected lines
are kept in `rejects` with their reason and skipped lines are the format's own non-requests (W3C
directives, blank lines), counted in `skipped_lines`. A file already loaded (same SHA-256) is not
loaded again, so sources can be added to an existing case.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics import __version__
from forensics.casefile import Case, SourceSpec
from forensics.db import connect, create_tables
from forensics.detect import detect_lines, score_format
from forensics.errors import InputError
from forensics.formats import FormatDef, get_format
from forensics.inputs import (
    MAX_LINE_BYTES,
    ReadState,
    check_readable,
    expand_source_path,
    head_lines,
    looks_binary,
    parquet_records,
    read_chunks,
    sha256_file,
    sniff_compression,
)
from forensics.readers import long_line_rejects, make_reader
from forensics.schema import empty_requests_frame


@dataclass
class PlannedFile:
    path: Path
    display_path: str
    spec: SourceSpec
    fmt: FormatDef
    detected: bool
    compression: str
    size: int
    sha256: str = ""
    empty: bool = False


@dataclass
class FileResult:
    source_id: int
    planned: PlannedFile
    lines_read: int = 0
    lines_parsed: int = 0
    lines_rejected: int = 0
    requests: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    truncated: bool = False
    note: str | None = None
    reject_examples: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass
class IngestReport:
    database: Path
    manifest: Path
    loaded: list[FileResult]
    already_loaded: list[str]
    warnings: list[str]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "files": len(self.loaded),
            "lines_read": sum(r.lines_read for r in self.loaded),
            "lines_parsed": sum(r.lines_parsed for r in self.loaded),
            "requests": sum(r.requests for r in self.loaded),
            "lines_rejected": sum(r.lines_rejected for r in self.loaded),
            "lines_skipped": sum(r.lines_skipped for r in self.loaded),
        }


# progress(event, info): events "plan" (files, bytes), "file_start", "chunk" (lines, bytes),
# "file_done". The CLI draws a bar from them; the library never prints.
Progress = Callable[[str, dict[str, Any]], None]


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def resolve_format(spec: SourceSpec, path: Path, lines: list[str]) -> tuple[FormatDef, bool]:
    if spec.format == "auto":
        return detect_lines(lines, str(path)).format, True
    fmt = get_format(spec.format)
    data = [ln for ln in lines if ln.strip()][:50]
    if data and score_format(fmt, data, spec.fields) == 0.0:
        try:
            guess = detect_lines(lines, str(path)).format.name
            hint = f"its first lines look like {guess!r}; fix format in the case file or use \"auto\""
        except InputError:
            hint = "check the format named in the case file, or use format = \"auto\""
        except Exception:
            hint = "check the format named in the case file, or use format = \"auto\""
        raise InputError(
            f"none of the first {len(data)} lines reads as format {fmt.name!r}", hint=hint, path=path
        )
    return fmt, False


def plan_files(case: Case) -> tuple[list[PlannedFile], list[str]]:
    """Check every input before anything is loaded, so that a long run does not fail late."""
    planned: list[PlannedFile] = []
    warnings: list[str] = []
    seen: set[Path] = set()
    for spec in case.sources:
        files = expand_source_path(spec.path, case.base_dir)
        nonempty = 0
        for path in files:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            check_readable(path)
            size = path.stat().st_size
            display = _display(path, case.base_dir)
            if size == 0:
                warnings.append(f"{display}: empty file (recorded with 0 lines)")
                fmt = get_format(spec.format) if spec.format != "auto" else get_format("combined")
                planned.append(PlannedFile(path, display, spec, fmt, spec.format == "auto", "none", 0, empty=True))
                continue
            compression = sniff_compression(path)
            raw = head_lines(path, compression)
            if compression != "parquet" and looks_binary(raw):
                raise InputError(
                    "this is a binary file, not a text log",
                    hint="remove it from the folder or narrow the source's path or glob",
                    path=path,
                )
            lines = [b.decode("utf-8", "backslashreplace") for b in raw]
            if any(ln.strip() for ln in lines):
                nonempty += 1
                fmt, detected = resolve_format(spec, path, lines)
            else:
                warnings.append(f"{display}: no lines with content (recorded, nothing to read)")
                fmt = get_format(spec.format if spec.format != "auto" else "combined")
                detected = spec.format == "auto"
            if compression == "parquet" and fmt.family != "json":
                raise InputError(
                    f"a Parquet file cannot be read as format {fmt.name!r}",
                    hint="Parquet logs are read with a JSON-family format, e.g. format = \"cloudfront_v2\"",
                    path=path,
                )
            if fmt.timezone == "source" and not spec.timezone:
                raise InputError(
                    f"format {fmt.name!r} writes times without a zone and the source gives none",
                    hint="add timezone = \"<IANA zone of the server>\" to this [[sources]] table",
                    path=path,
                )
            planned.append(PlannedFile(path, display, spec, fmt, detected, compression, size))
        if nonempty == 0:
            raise InputError(
                f"every file of source {spec.path!r} is empty",
                hint="check that the logs were copied completely",
                path=spec.path,
            )
    return planned, warnings


FLUSH_ROWS = 500_000


class _BatchWriter:
    """One thread that inserts parsed batches into DuckDB while the readers parse the next
    chunks; a bounded queue keeps memory flat when parsing is faster than writing."""

    def __init__(self, con: duckdb.DuckDBPyConnection, depth: int = 4) -> None:
        self.cur = con.cursor()
        self.queue: queue.Queue[tuple[str, pl.DataFrame] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="forensics-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        pending: dict[str, list[pl.DataFrame]] = {"requests": [], "rejects": []}
        rows = 0
        while True:
            item = self.queue.get()
            if item is None:
                self._flush(pending)
                return
            table, frame = item
            pending[table].append(frame)
            rows += frame.height
            # DuckDB writes a few large inserts several times faster than many small ones.
            if rows >= FLUSH_ROWS:
                self._flush(pending)
                rows = 0

    def _flush(self, pending: dict[str, list[pl.DataFrame]]) -> None:
        if self.error is not None:
            for frames in pending.values():
                frames.clear()
            return
        try:
            for table, frames in pending.items():
                if not frames:
                    continue
                batch = pl.concat(frames, rechunk=False)
                frames.clear()
                if table == "requests":
                    # Columns the format never fills are left to their NULL default: scanning
                    # them from Arrow costs a tenth of the insert.
                    batch = batch.select(c for c in batch.columns if batch.get_column(c).null_count() < batch.height)
                self.cur.register("batch", batch)
                if table == "requests":
                    self.cur.execute("INSERT INTO requests BY NAME SELECT * FROM batch")
                else:
                    self.cur.execute(
                        "INSERT INTO rejects BY NAME SELECT source_id, line_no, reason, line FROM batch"
                    )
                self.cur.unregister("batch")
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc

    def put(self, table: str, frame: pl.DataFrame) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((table, frame))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


@dataclass
class _Chunk:
    requests: pl.DataFrame
    rejects: pl.DataFrame
    skipped: Counter[str]
    lines: int


def _results(reader: Any, pf: PlannedFile, state: ReadState, max_line_bytes: int) -> Iterator[_Chunk]:
    """The reader's results chunk by chunk: text by lines, Parquet by rows rendered as JSON.
    Lines over the length limit come as rejects of their own; the reader's finish() reports
    what it still holds at the end (a JSON document cut short)."""
    if pf.compression == "parquet":
        for start, lines in parquet_records(pf.path, state):
            res = reader.read_lines(start, lines)
            yield _Chunk(res.requests, res.rejects, res.skipped, len(lines))
        return
    for start, chunk in read_chunks(pf.path, pf.compression, state, max_line_bytes=max_line_bytes):
        res = reader.read_chunk(start, chunk)
        n = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        yield _Chunk(res.requests, res.rejects, res.skipped, n)
        if state.long_lines:
            yield _Chunk(empty_requests_frame(), long_line_rejects(state, max_line_bytes), Counter(), 0)
    if state.long_lines:
        yield _Chunk(empty_requests_frame(), long_line_rejects(state, max_line_bytes), Counter(), 0)
    res = reader.finish()
    yield _Chunk(res.requests, res.rejects, res.skipped, 0)


def _read_file(
    writer: _BatchWriter,
    result: FileResult,
    progress: Progress | None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> None:
    pf = result.planned
    state = ReadState()
    if progress:
        progress("file_start", {"path": pf.display_path, "size": pf.size})
    if pf.empty:
        return
    reader = make_reader(pf.fmt, pf.spec.timezone, pf.spec.fields)
    if hasattr(reader, "source_id"):
        reader.source_id = result.source_id
    first: datetime | None = None
    last: datetime | None = None
    for res in _results(reader, pf, state, max_line_bytes):
        req = res.requests
        if req.height:
            req = req.with_columns(pl.lit(result.source_id, pl.Int32).alias("source_id"))
            writer.put("requests", req)
            ts = req.get_column("ts")
            lo, hi = ts.min(), ts.max()
            if isinstance(lo, datetime) and (first is None or lo < first):
                first = lo
            if isinstance(hi, datetime) and (last is None or hi > last):
                last = hi
        if res.rejects.height:
            rej = res.rejects.with_columns(pl.lit(result.source_id, pl.Int32).alias("source_id"))
            writer.put("rejects", rej)
            if len(result.reject_examples) < 5:
                result.reject_examples.extend(
                    (int(r[0]), str(r[1])) for r in res.rejects.select("line_no", "reason").head(5).rows()
                )
        # Lines, not records: a JSON line can hold several records (one row each). A line with
        # at least one request counts as parsed; a line with only rejects as rejected.
        parsed_lines = req.get_column("line_no").unique() if req.height else pl.Series([], dtype=pl.Int64)
        rejected_lines = (
            res.rejects.get_column("line_no").unique() if res.rejects.height else pl.Series([], dtype=pl.Int64)
        )
        result.lines_parsed += parsed_lines.len()
        result.lines_rejected += int((~rejected_lines.is_in(parsed_lines.implode())).sum())
        result.requests += req.height
        result.skipped.update(res.skipped)
        if progress:
            progress("chunk", {"lines": res.lines})
    result.lines_read = state.lines
    result.first_ts, result.last_ts = first, last
    result.truncated = state.truncated
    notes = [n for n in (state.note, *getattr(reader, "notes", [])) if n]
    result.note = "; ".join(notes) or None
    accounted = result.lines_parsed + result.lines_rejected + result.lines_skipped
    if accounted != result.lines_read:
        # A bug in a reader, not bad input: stop rather than hand over an incomplete case.
        raise RuntimeError(
            f"{pf.display_path}: {result.lines_read} lines read but {accounted} accounted for"
        )
    if progress:
        progress("file_done", {"path": pf.display_path})


def ingest(
    case: Case,
    out_dir: Path,
    progress: Progress | None = None,
    workers: int = 2,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> IngestReport:
    """Load the case's files; lines longer than `max_line_bytes` are rejected as too long."""
    planned, warnings = plan_files(case)
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "case.duckdb"
    con = connect(db_path)
    # Written blocks are on disk: a bounded buffer pool keeps memory flat on large cases, and
    # row order is carried by (source_id, line_no), not by insertion order.
    con.execute("SET memory_limit = '1GB'")
    con.execute("SET preserve_insertion_order = false")
    create_tables(con)
    known = {r[0]: r[1] for r in con.execute("SELECT sha256, path FROM sources").fetchall()}
    next_id = (con.execute("SELECT coalesce(max(source_id), 0) FROM sources").fetchone() or [0])[0] + 1

    def hash_one(pf: PlannedFile) -> None:
        pf.sha256 = sha256_file(pf.path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(hash_one, planned))

    to_load: list[FileResult] = []
    already: list[str] = []
    batch_hashes: set[str] = set()
    for pf in planned:
        if pf.sha256 in known or pf.sha256 in batch_hashes:
            already.append(pf.display_path)
            continue
        batch_hashes.add(pf.sha256)
        to_load.append(FileResult(next_id, pf))
        next_id += 1
    if progress:
        progress("plan", {"files": len(to_load), "bytes": sum(r.planned.size for r in to_load)})

    writer = _BatchWriter(con)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(_read_file, writer, r, progress, max_line_bytes) for r in to_load]
            for f in futures:
                f.result()
    finally:
        writer.close()

    now = datetime.now(UTC)
    for r in to_load:
        pf = r.planned
        con.execute(
            "INSERT INTO sources VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)",
            [
                r.source_id, pf.display_path, str(pf.path.resolve()), pf.sha256, pf.size,
                pf.compression, pf.fmt.name, pf.detected, pf.spec.role, pf.spec.timezone,
                r.lines_read, r.lines_parsed, r.lines_rejected, r.lines_skipped,
                r.first_ts, r.last_ts, r.truncated, r.note, now, r.requests,
            ],
        )
        for kind, n in sorted(r.skipped.items()):
            con.execute("INSERT INTO skipped_lines VALUES ($1, $2, $3)", [r.source_id, kind, n])
    _write_case_info(con, case)
    manifest = write_manifest(con, out_dir, case)
    con.close()
    return IngestReport(db_path, manifest, to_load, already, warnings)


def _write_case_info(con: duckdb.DuckDBPyConnection, case: Case) -> None:
    info = {
        "name": case.name,
        "timezone": case.timezone,
        "case_file": str(case.path) if case.path else "",
        "case_sha256": case.sha256 or "",
        "tool_version": __version__,
    }
    con.execute("DELETE FROM case_info WHERE key IN (SELECT unnest($1::VARCHAR[]))", [list(info)])
    for k, v in info.items():
        con.execute("INSERT INTO case_info VALUES ($1, $2)", [k, v])


def _iso(ts: Any) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_manifest(
    con: duckdb.DuckDBPyConnection, out_dir: Path, case: Case, extra: dict[str, Any] | None = None
) -> Path:
    """manifest.json: what was read, with hashes and line accounting, for the chain of custody."""
    rows = con.execute(
        "SELECT source_id, path, sha256, size_bytes, compression, format, format_detected, role,"
        " lines_read, lines_parsed, lines_rejected, lines_skipped, first_ts, last_ts, truncated, note, requests"
        " FROM sources ORDER BY source_id"
    ).fetchall()
    skipped = con.execute("SELECT source_id, kind, lines FROM skipped_lines").fetchall()
    skipped_by: dict[int, dict[str, int]] = {}
    for sid, kind, n in skipped:
        skipped_by.setdefault(sid, {})[kind] = n
    sources = []
    for r in rows:
        sources.append(
            {
                "source_id": r[0], "path": r[1], "sha256": r[2], "size_bytes": r[3],
                "compression": r[4], "format": r[5], "format_detected": r[6], "role": r[7],
                "lines_read": r[8], "lines_parsed": r[9], "lines_rejected": r[10],
                "lines_skipped": r[11], "skipped": skipped_by.get(r[0], {}),
                "first_ts": _iso(r[12]), "last_ts": _iso(r[13]), "truncated": r[14], "note": r[15],
                "requests": r[16],
            }
        )
    path = out_dir / "manifest.json"
    existing: dict[str, Any] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except (OSError, ValueError):
            existing = {}
    manifest = {
        **existing,
        "tool": "forensics",
        "tool_version": __version__,
        "written_at": _iso(datetime.now(UTC)),
        "case": {
            "name": case.name,
            "file": str(case.path) if case.path else None,
            "sha256": case.sha256,
            "timezone": case.timezone,
        },
        "database": "case.duckdb",
        "sources": sources,
        "totals": {
            "files": len(sources),
            "lines_read": sum(s["lines_read"] for s in sources),
            "lines_parsed": sum(s["lines_parsed"] for s in sources),
            "lines_rejected": sum(s["lines_rejected"] for s in sources),
            "lines_skipped": sum(s["lines_skipped"] for s in sources),
        },
        **(extra or {}),
    }
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return path
